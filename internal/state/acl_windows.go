//go:build windows

package state

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// restrictACL gives path a protected ACL (nothing inherited from
// %ProgramData%, where every user may create files): full control for
// SYSTEM, the Administrators and the current account, inherited by what is
// created inside.
func restrictACL(path string) error {
	user, err := currentUser()
	if err != nil {
		return err
	}
	sd, err := windows.SecurityDescriptorFromString("D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FA;;;" + user.String() + ")")
	if err != nil {
		return err
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return err
	}
	return windows.SetNamedSecurityInfo(path, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
}

func currentUser() (*windows.SID, error) {
	tu, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return nil, err
	}
	return tu.User.Sid, nil
}

// checkOwner refuses a folder whose owner is not this account, SYSTEM or
// the Administrators: anyone else could change its ACL.
func checkOwner(path string) error {
	sd, err := windows.GetNamedSecurityInfo(path, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("cannot read the owner of %s: %w", path, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("cannot read the owner of %s: %w", path, err)
	}
	user, err := currentUser()
	if err != nil {
		return err
	}
	if owner.Equals(user) || owner.IsWellKnown(windows.WinLocalSystemSid) || owner.IsWellKnown(windows.WinBuiltinAdministratorsSid) {
		return nil
	}
	return &UnsafeError{Path: path, Problem: "is owned by " + owner.String() + ", not by this account, SYSTEM or the Administrators",
		Fix: "another account could change its permissions; remove it and let keyescrow create it, or take ownership (takeown /f)"}
}
