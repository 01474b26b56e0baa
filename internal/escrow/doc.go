// Package escrow owns the run pipeline (docs/how-it-works.md):
// preflight every destination against the policy, take the host lock, export
// the key through SQL Server (or take a given file), hash it once, write it
// create-only to every destination concurrently, prove each copy (service
// checksum, read-back re-hash, version, retention), store the receipt beside
// each copy, and remove the local key file only when every copy is proven.
//
// Nothing here reports success it has not proven: every destination's status
// is "verified" only after its stored bytes were read back and re-hashed.
package escrow
