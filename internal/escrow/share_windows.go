package escrow

// shareWithServer: on Windows the staged file inherits the key folder's
// ACL, which grants the SQL Server service account (see docs/operations.md).
func shareWithServer(path, dir string) {}
