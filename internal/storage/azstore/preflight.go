package azstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/storage/armstorage"

	"github.com/keyescrow/keyescrow/internal/storage"
)

// Data and control actions named when a fact cannot be read.
const (
	actionContainerRead = "Microsoft.Storage/storageAccounts/blobServices/containers/read"
	actionAccountRead   = "Microsoft.Storage/storageAccounts/read"
	actionBlobSvcRead   = "Microsoft.Storage/storageAccounts/blobServices/read"
	actionBlobWrite     = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write"
	actionBlobRead      = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
	actionRunAsSuper    = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/immutableStorage/runAsSuperUser/action"
)

// Preflight proves what the service says about the container and account,
// writing nothing, with at most 4 concurrent requests:
//   - Get Container Properties: the container exists (404 → ErrNotFound) and
//     x-ms-immutable-storage-with-versioning-enabled proves version-level
//     immutability, which Azure allows only with versioning on;
//   - Get Account Information: SKU and kind (redundancy) as a Note;
//   - with ResourceID and an Entra ID credential, the ARM storage account
//     (region, secondary region, SKU) and its blob service properties
//     (isVersioningEnabled).
//
// Without ResourceID the region is Unknown, with a Detail saying what to
// set and grant. A 403 on any of these makes that fact Unknown, naming the
// missing action; a rejected credential is ErrAuth.
func (s *Store) Preflight(ctx context.Context) (storage.Properties, error) {
	var (
		wg                           sync.WaitGroup
		cont, acct, armAcct, armBlob fact
	)
	wg.Go(func() { cont = s.containerFact(ctx) })
	wg.Go(func() { acct = s.accountInfoFact(ctx) })
	armOK := s.opts.ResourceID != "" && s.opts.Credential.Token() != nil && s.armEndpoint() != ""
	var rid *arm.ResourceID
	if armOK {
		var err error
		if rid, err = arm.ParseResourceID(s.opts.ResourceID); err != nil || !strings.EqualFold(rid.ResourceType.String(), "Microsoft.Storage/storageAccounts") {
			return storage.Properties{}, fmt.Errorf("azureblob: resource_id %q is not a storage account id (/subscriptions/…/resourceGroups/…/providers/Microsoft.Storage/storageAccounts/NAME): %w", s.opts.ResourceID, storage.ErrInvalid)
		}
		wg.Go(func() { armAcct = s.armAccountFact(ctx, rid) })
		wg.Go(func() { armBlob = s.armBlobServiceFact(ctx, rid) })
	}
	wg.Wait()
	for _, f := range []fact{cont, acct, armAcct, armBlob} {
		if f.fatal != nil {
			return storage.Properties{}, f.fatal
		}
	}

	p := storage.Properties{
		Immutability: cont.prop,
		Writable:     s.writable(),
		Notes:        append(append(append(cont.notes, acct.notes...), armAcct.notes...), armBlob.notes...),
	}
	switch {
	case cont.prop.State == storage.Proven:
		p.Versioning = storage.Property{State: storage.Proven, Value: "Enabled",
			Detail: "the container has version-level immutability, which Azure allows only with blob versioning on"}
	case armOK:
		p.Versioning = armBlob.prop
	default:
		p.Versioning = storage.Property{State: storage.Unknown, Detail: "blob versioning is not proven: the container has no version-level immutability, and the account's versioning setting is readable only through Azure Resource Manager: " + s.armHint(actionBlobSvcRead)}
	}
	if armOK {
		p.Region = armAcct.prop
	} else {
		p.Region = storage.Property{State: storage.Unknown, Detail: "the account's region is readable only through Azure Resource Manager: " + s.armHint(actionAccountRead)}
	}
	s.mu.Lock()
	pc := p
	s.proven = &pc
	s.mu.Unlock()
	return p, nil
}

// fact is one request's contribution to Properties.
type fact struct {
	prop  storage.Property
	notes []string
	fatal error // the destination cannot be reached at all
}

// unreachable reports whether err means nothing else can be proven either.
func unreachable(err error) bool {
	return errors.Is(err, storage.ErrAuth) || errors.Is(err, storage.ErrUnavailable) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (s *Store) containerFact(ctx context.Context) fact {
	resp, err := s.container.GetProperties(ctx, nil)
	if err != nil {
		err = translate("read the properties of container "+s.opts.Container, err)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return fact{fatal: fmt.Errorf("%w (create the container %q with version-level immutability, or correct container/account_url)", err, s.opts.Container)}
		case errors.Is(err, storage.ErrPermission) && s.opts.Credential.Mode() == AuthSAS:
			return fact{prop: storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("the SAS may not read the container's properties (%v): a service (container) SAS cannot; use an account SAS with ss=b, srt=co, sp=rcl, or an Entra ID auth with %s", err, actionContainerRead)}}
		case errors.Is(err, storage.ErrPermission):
			return fact{prop: storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("the credentials may not read the container's properties (%v): grant the data action %s (role Storage Blob Data Reader or the keyescrow agent role)", err, actionContainerRead)}}
		case unreachable(err):
			return fact{fatal: err}
		}
		return fact{prop: storage.Property{State: storage.Unknown, Detail: err.Error()}}
	}
	if resp.IsImmutableStorageWithVersioningEnabled != nil && *resp.IsImmutableStorageWithVersioningEnabled {
		return fact{prop: storage.Property{State: storage.Proven, Value: "version-level immutability",
			Detail: "Get Container Properties: x-ms-immutable-storage-with-versioning-enabled: true"}}
	}
	return fact{prop: storage.Property{State: storage.Absent,
		Detail: "not immutable: Get Container Properties did not return x-ms-immutable-storage-with-versioning-enabled: true; enable version-level immutability on the container (or account) (an existing container is migrated with `az storage container-rm migrate-vlw`)"}}
}

func (s *Store) accountInfoFact(ctx context.Context) fact {
	resp, err := s.container.GetAccountInfo(ctx, nil)
	if err != nil {
		err = translate("read the account information", err)
		if errors.Is(err, storage.ErrAuth) || errors.Is(err, context.Canceled) {
			return fact{fatal: err}
		}
		return fact{notes: []string{"account SKU and kind unknown: " + err.Error()}}
	}
	var sku, kind string
	if resp.SKUName != nil {
		sku = string(*resp.SKUName)
	}
	if resp.AccountKind != nil {
		kind = string(*resp.AccountKind)
	}
	return fact{notes: []string{fmt.Sprintf("account SKU %s (%s), kind %s (Get Account Information)", orUnknown(sku), redundancy(sku), orUnknown(kind))}}
}

// redundancy explains a SKU's replication.
func redundancy(sku string) string {
	s := strings.ToUpper(sku)
	switch {
	case strings.HasSuffix(s, "_RAGZRS"), strings.HasSuffix(s, "_RAGRS"):
		return "geo-redundant with read access to the secondary region"
	case strings.HasSuffix(s, "_GZRS"), strings.HasSuffix(s, "_GRS"):
		return "geo-redundant"
	case strings.HasSuffix(s, "_ZRS"):
		return "zone-redundant within one region"
	case strings.HasSuffix(s, "_LRS"):
		return "locally redundant within one datacenter"
	}
	return "redundancy unknown"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (s *Store) armOptions() *arm.ClientOptions {
	co := clientOptions(s.opts.HTTPClient)
	c := cloud.AzurePublic
	ep := s.armEndpoint()
	switch ep {
	case cloud.AzureChina.Services[cloud.ResourceManager].Endpoint:
		c = cloud.AzureChina
	case cloud.AzureGovernment.Services[cloud.ResourceManager].Endpoint:
		c = cloud.AzureGovernment
	}
	rm := c.Services[cloud.ResourceManager]
	rm.Endpoint = ep
	co.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: c.ActiveDirectoryAuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{cloud.ResourceManager: rm}}
	return &arm.ClientOptions{ClientOptions: co}
}

// armEndpoint is the Resource Manager endpoint of account_url's cloud.
func (s *Store) armEndpoint() string {
	if s.opts.ARMEndpoint != "" {
		return s.opts.ARMEndpoint
	}
	u, err := url.Parse(s.opts.AccountURL)
	if err != nil {
		return ""
	}
	h := strings.ToLower(u.Hostname())
	switch {
	case strings.HasSuffix(h, ".core.windows.net"):
		return cloud.AzurePublic.Services[cloud.ResourceManager].Endpoint
	case strings.HasSuffix(h, ".core.chinacloudapi.cn"):
		return cloud.AzureChina.Services[cloud.ResourceManager].Endpoint
	case strings.HasSuffix(h, ".core.usgovcloudapi.net"):
		return cloud.AzureGovernment.Services[cloud.ResourceManager].Endpoint
	}
	return ""
}

// armHint says why ARM was not asked and what to do.
func (s *Store) armHint(action string) string {
	switch {
	case s.opts.ResourceID == "":
		return fmt.Sprintf("set resource_id to the storage account's ARM id and grant the identity %s (Reader on the account, or the keyescrow agent role)", action)
	case s.opts.Credential.Token() == nil:
		return fmt.Sprintf("auth %s cannot call Azure Resource Manager; use an Entra ID auth with %s", s.opts.Credential.Mode(), action)
	default:
		return fmt.Sprintf("no Resource Manager endpoint is known for account_url %s; use the account's *.blob.core.windows.net URL", s.opts.AccountURL)
	}
}

func (s *Store) armAccountFact(ctx context.Context, rid *arm.ResourceID) fact {
	cl, err := armstorage.NewAccountsClient(rid.SubscriptionID, s.opts.Credential.Token(), s.armOptions())
	if err != nil {
		return fact{prop: storage.Property{State: storage.Unknown, Detail: err.Error()}}
	}
	resp, err := cl.GetProperties(ctx, rid.ResourceGroupName, rid.Name, nil)
	if err != nil {
		err = translate("read the storage account through Azure Resource Manager", err)
		if errors.Is(err, storage.ErrAuth) || errors.Is(err, context.Canceled) {
			return fact{fatal: err}
		}
		return fact{prop: storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("%v: grant the identity %s on %s (Reader, or the keyescrow agent role)", err, actionAccountRead, s.opts.ResourceID)}}
	}
	a := resp.Account
	var region string
	var notes []string
	if a.Properties != nil && a.Properties.PrimaryLocation != nil {
		region = *a.Properties.PrimaryLocation
	} else if a.Location != nil {
		region = *a.Location
	}
	if a.Properties != nil && a.Properties.SecondaryLocation != nil && *a.Properties.SecondaryLocation != "" {
		notes = append(notes, "secondary region "+*a.Properties.SecondaryLocation+" (Azure Resource Manager)")
	}
	if a.SKU != nil && a.SKU.Name != nil {
		notes = append(notes, fmt.Sprintf("account SKU %s (%s) (Azure Resource Manager)", *a.SKU.Name, redundancy(string(*a.SKU.Name))))
	}
	if region == "" {
		return fact{prop: storage.Property{State: storage.Unknown, Detail: "Azure Resource Manager returned no location for " + s.opts.ResourceID}, notes: notes}
	}
	return fact{prop: storage.Property{State: storage.Proven, Value: region, Detail: "primary location of " + rid.Name + " (Azure Resource Manager)"}, notes: notes}
}

func (s *Store) armBlobServiceFact(ctx context.Context, rid *arm.ResourceID) fact {
	cl, err := armstorage.NewBlobServicesClient(rid.SubscriptionID, s.opts.Credential.Token(), s.armOptions())
	if err != nil {
		return fact{prop: storage.Property{State: storage.Unknown, Detail: err.Error()}}
	}
	resp, err := cl.GetServiceProperties(ctx, rid.ResourceGroupName, rid.Name, nil)
	if err != nil {
		err = translate("read the blob service properties through Azure Resource Manager", err)
		if errors.Is(err, storage.ErrAuth) || errors.Is(err, context.Canceled) {
			return fact{fatal: err}
		}
		return fact{prop: storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("%v: grant the identity %s on %s", err, actionBlobSvcRead, s.opts.ResourceID)}}
	}
	if pr := resp.BlobServiceProperties.BlobServiceProperties; pr != nil && pr.IsVersioningEnabled != nil && *pr.IsVersioningEnabled {
		return fact{prop: storage.Property{State: storage.Proven, Value: "Enabled", Detail: "blob service isVersioningEnabled: true (Azure Resource Manager)"}}
	}
	return fact{prop: storage.Property{State: storage.Absent, Value: "Disabled", Detail: "blob service isVersioningEnabled is not true (Azure Resource Manager): enable blob versioning on the account"}}
}

// writable is what can be told without writing: a SAS names its
// permissions; for keys and Entra ID only a write would tell.
func (s *Store) writable() storage.Property {
	if sp, ok := s.opts.Credential.sasPermissions(); ok {
		if strings.ContainsAny(sp, "cw") && strings.Contains(sp, "r") {
			return storage.Property{State: storage.Proven, Value: "sp=" + sp, Detail: "the SAS grants create/write and read"}
		}
		return storage.Property{State: storage.Absent, Value: "sp=" + sp, Detail: "the SAS must grant c (or w) and r: issue one with sp=rc (no d needed)"}
	}
	return storage.Property{State: storage.Unknown, Detail: fmt.Sprintf("cannot be told without writing; the identity needs %s and, for locks, %s", actionBlobWrite, actionRunAsSuper)}
}

var _ storage.Backend = (*Store)(nil)
