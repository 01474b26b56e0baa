// keyescrow's Azure destination: a storage account in a second region
// (not the SQL Server host's region) with blob versioning, a container
// with version-level immutability, and a least-privilege custom role for
// the agent's identity, assigned on the account.
//
//   az group create -n keyescrow -l northeurope
//   az deployment group create -g keyescrow -f deploy/azure/main.bicep \
//     -p accountName=corpsqlkeys location=northeurope principalId=<object id of the agent's identity>
//
// Deploy it into a region other than the hosts' home_region: keyescrow
// reads the account's primary location through Resource Manager and
// refuses a destination in home_region.
targetScope = 'resourceGroup'

@description('Storage account name (3-24 lower-case letters and digits).')
param accountName string

@description('Region of the account: not the region of the SQL Server hosts.')
param location string = resourceGroup().location

@description('Geo-redundant SKU: a second copy in the paired region.')
@allowed(['Standard_RAGZRS', 'Standard_GZRS', 'Standard_RAGRS', 'Standard_GRS', 'Standard_ZRS', 'Standard_LRS'])
param skuName string = 'Standard_RAGZRS'

@description('Container that holds the key copies.')
param containerName string = 'sqlkeys'

@description('Object id of the identity keyescrow runs as (managed identity, workload identity or service principal); empty to skip the role assignment.')
param principalId string = ''

@allowed(['ServicePrincipal', 'User', 'Group'])
param principalType string = 'ServicePrincipal'

@description('Days soft-deleted blobs are kept (a safety net; locked versions cannot be deleted anyway).')
param deleteRetentionDays int = 30

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: accountName
  location: location
  kind: 'StorageV2'
  sku: { name: skuName }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // Entra ID only; set true only for auth shared-key or sas
    accessTier: 'Hot'
    publicNetworkAccess: 'Enabled'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true // required by version-level immutability
    deleteRetentionPolicy: { enabled: true, days: deleteRetentionDays }
    containerDeleteRetentionPolicy: { enabled: true, days: deleteRetentionDays }
  }
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: containerName
  properties: {
    publicAccess: 'None'
    immutableStorageWithVersioning: { enabled: true } // version-level immutability (WORM per version)
  }
}

// The same permissions as keyescrow-agent-role.json.
resource agentRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'keyescrow-agent')
  properties: {
    roleName: 'keyescrow agent (${resourceGroup().name})'
    description: 'Least privilege for keyescrow: read the account, its blob service and containers; create blobs with an immutability policy or legal hold; read them back. No delete.'
    type: 'customRole'
    permissions: [
      {
        actions: [
          'Microsoft.Storage/storageAccounts/read'
          'Microsoft.Storage/storageAccounts/blobServices/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/read'
        ]
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: [resourceGroup().id]
  }
}

resource agentAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(account.id, principalId, agentRole.id)
  scope: account
  properties: {
    roleDefinitionId: agentRole.id
    principalId: principalId
    principalType: principalType
  }
}

output accountUrl string = account.properties.primaryEndpoints.blob
output resourceId string = account.id
output container string = container.name
output region string = account.properties.primaryLocation
