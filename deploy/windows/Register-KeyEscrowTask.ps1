<#
.SYNOPSIS
  Installs keyescrow on a Windows SQL Server host and registers the daily
  Task Scheduler task that runs `keyescrow backup`.

.DESCRIPTION
  - Copies keyescrow.exe to "C:\Program Files\keyescrow".
  - Creates C:\ProgramData\keyescrow with the config and a secrets folder
    whose ACL allows only SYSTEM, Administrators and the task's account.
  - Creates the key folder SQL Server writes to, with modify rights for the
    SQL Server service account (NT SERVICE\MSSQLSERVER or
    NT SERVICE\MSSQL$INSTANCE) and for the task's account.
  - Registers keyescrow-backup.xml with the chosen account: SYSTEM, or a
    group managed service account (gMSA, e.g. CORP\keyescrow$), which needs
    "Log on as a batch job" and no stored password.
  Secrets are never parameters: write them afterwards from standard input
  (see docs/operations.md). Use -WhatIf to print every action without doing it.

.EXAMPLE
  .\Register-KeyEscrowTask.ps1 -Binary .\keyescrow.exe -Account SYSTEM -WhatIf
.EXAMPLE
  .\Register-KeyEscrowTask.ps1 -Binary .\keyescrow.exe -Account 'CORP\keyescrow$' -SqlServiceAccount 'NT SERVICE\MSSQL$INST1'
#>
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [Parameter(Mandatory = $true)][string] $Binary,
    [string] $Account = 'SYSTEM',
    [string] $Config = '',
    [string] $InstallDir = 'C:\Program Files\keyescrow',
    [string] $DataDir = 'C:\ProgramData\keyescrow',
    [string] $KeyDir = 'C:\ProgramData\keyescrow\keys',
    [string] $SqlServiceAccount = 'NT SERVICE\MSSQLSERVER',
    [string] $TaskName = 'keyescrow-backup',
    [string] $TaskXml = (Join-Path $PSScriptRoot 'keyescrow-backup.xml')
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

if (-not (Test-Path -LiteralPath $Binary -PathType Leaf)) {
    throw "keyescrow.exe not found at '$Binary': pass -Binary with the path to the Windows build (make windows)."
}
if (-not (Test-Path -LiteralPath $TaskXml -PathType Leaf)) {
    throw "The task definition '$TaskXml' is missing: run the script from deploy\windows or pass -TaskXml."
}
$gmsa = $Account -ne 'SYSTEM'
if ($gmsa -and -not $Account.EndsWith('$')) {
    throw "-Account '$Account' is not a gMSA (its name ends with `$, e.g. CORP\keyescrow`$). Use SYSTEM or a gMSA: keyescrow never stores a password for the task."
}

function Set-OwnerOnlyAcl([string] $Path, [string[]] $Readers, [string] $Rights) {
    $acl = New-Object System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)   # no inherited access
    foreach ($who in @('NT AUTHORITY\SYSTEM', 'BUILTIN\Administrators') + $Readers) {
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($who, $Rights, 'ContainerInherit,ObjectInherit', 'None', 'Allow')
        $acl.AddAccessRule($rule)
    }
    if ($PSCmdlet.ShouldProcess($Path, "set ACL: only SYSTEM, Administrators and $($Readers -join ', ') ($Rights)")) {
        Set-Acl -LiteralPath $Path -AclObject $acl
    }
}

foreach ($dir in @($InstallDir, $DataDir, (Join-Path $DataDir 'secrets'), $KeyDir)) {
    if (-not (Test-Path -LiteralPath $dir)) {
        if ($PSCmdlet.ShouldProcess($dir, 'create folder')) { New-Item -ItemType Directory -Path $dir | Out-Null }
    }
}
$exe = Join-Path $InstallDir 'keyescrow.exe'
if ($PSCmdlet.ShouldProcess($exe, "copy $Binary")) { Copy-Item -LiteralPath $Binary -Destination $exe -Force }

$cfg = Join-Path $DataDir 'keyescrow.yaml'
if ($Config -and -not (Test-Path -LiteralPath $cfg)) {
    if ($PSCmdlet.ShouldProcess($cfg, "copy $Config")) { Copy-Item -LiteralPath $Config -Destination $cfg }
}
foreach ($s in @('backup-password', 'sqlserver-dsn')) {
    $f = Join-Path (Join-Path $DataDir 'secrets') $s
    if (-not (Test-Path -LiteralPath $f)) {
        if ($PSCmdlet.ShouldProcess($f, 'create empty secret file')) { New-Item -ItemType File -Path $f | Out-Null }
    }
}

$runAs = if ($gmsa) { $Account } else { 'NT AUTHORITY\SYSTEM' }
Set-OwnerOnlyAcl -Path $DataDir -Readers @($runAs) -Rights 'ReadAndExecute'
Set-OwnerOnlyAcl -Path (Join-Path $DataDir 'secrets') -Readers @($runAs) -Rights 'Read'
# SQL Server writes the key file; the agent reads and deletes it.
Set-OwnerOnlyAcl -Path $KeyDir -Readers @($SqlServiceAccount, $runAs) -Rights 'Modify'

[xml] $xml = Get-Content -Raw -LiteralPath $TaskXml
$ns = New-Object System.Xml.XmlNamespaceManager($xml.NameTable)
$ns.AddNamespace('t', 'http://schemas.microsoft.com/windows/2004/02/mit/task')
$xml.SelectSingleNode('//t:Exec/t:Command', $ns).InnerText = $exe
$xml.SelectSingleNode('//t:Exec/t:Arguments', $ns).InnerText = "--config `"$cfg`" --log-format json backup"
$xml.SelectSingleNode('//t:Exec/t:WorkingDirectory', $ns).InnerText = $DataDir
$principal = $xml.SelectSingleNode('//t:Principal', $ns)
if ($gmsa) {
    $principal.SelectSingleNode('t:UserId', $ns).InnerText = $Account
    $principal.SelectSingleNode('t:LogonType', $ns).InnerText = 'Password'
}

if ($PSCmdlet.ShouldProcess($TaskName, "register the task to run as $runAs")) {
    Register-ScheduledTask -TaskName $TaskName -TaskPath '\keyescrow\' -Xml $xml.OuterXml -Force | Out-Null
} else {
    Write-Output $xml.OuterXml
}
Write-Output @"
keyescrow is installed. Next:
  1. Edit $cfg (destinations, home_region); set backup.password_file and
     sqlserver.dsn_file to the files in $DataDir\secrets.
  2. Write each secret from standard input, e.g. in PowerShell:
       `$p = Read-Host -AsSecureString 'backup password'
       [Net.NetworkCredential]::new('', `$p).Password | Set-Content -NoNewline -LiteralPath '$DataDir\secrets\backup-password'
  3. Test: Start-ScheduledTask -TaskPath '\keyescrow\' -TaskName $TaskName; then
     (Get-ScheduledTaskInfo -TaskPath '\keyescrow\' -TaskName $TaskName).LastTaskResult is keyescrow's exit code.
"@
