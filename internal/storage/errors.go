package storage

import "errors"

// Sentinel errors. Each backend has one translator from its service's error
// codes to these; callers test with errors.Is and report the wrapped detail.
var (
	// ErrExists: a create-only Put found the key already stored.
	ErrExists = errors.New("object already exists")
	// ErrNotFound: the key, version, bucket, container or folder is missing.
	ErrNotFound = errors.New("not found")
	// ErrAuth: the credentials were rejected (unknown key, bad signature,
	// expired token).
	ErrAuth = errors.New("credentials rejected")
	// ErrPermission: the credentials are valid but the action is not allowed
	// (IAM, RBAC, file-system permission).
	ErrPermission = errors.New("permission denied")
	// ErrLocked: a retention lock or legal hold refused the operation.
	ErrLocked = errors.New("locked by retention")
	// ErrChecksum: the service refused the data because it did not match the
	// checksum sent with it (corrupted in flight).
	ErrChecksum = errors.New("checksum refused by the service")
	// ErrUnavailable: the service could not be reached or failed; the
	// operation may succeed if retried later.
	ErrUnavailable = errors.New("service unavailable")
	// ErrInvalid: the request itself was wrong (bad retention mode, bad key).
	ErrInvalid = errors.New("invalid request")
)
