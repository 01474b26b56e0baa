// Package faultproxy holds the fault-injecting proxies the timeout and
// fault-campaign tests put between keyescrow and a real server on
// 127.0.0.1: an HTTP(S) proxy for S3 and Azure Blob that can stall a
// request before its answer, stall a body after the headers, trickle it,
// drop or reset the connection, answer 5xx or corrupt bytes, each for the
// n-th matching request, and hold a request while the test kills the
// agent; and a TCP proxy that can swallow every byte (TDS).
package faultproxy
