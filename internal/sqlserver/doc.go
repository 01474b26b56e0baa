// Package sqlserver owns everything keyescrow says to SQL Server: connecting
// through go-mssqldb from a DSN, reading the instance's identity, building the
// key statements as literal batches (SQL Server takes no parameters there),
// checking a password against SQL Server's policy before it is sent, and
// turning SQL Server error numbers into errors that say what to fix.
package sqlserver
