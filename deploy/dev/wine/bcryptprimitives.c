/* bcryptprimitives.dll for Wine 8 (Debian 12), test-only: Go >= 1.22 programs
 * call ProcessPrng from bcryptprimitives.dll at start, which Wine 8 lacks.
 * This shim forwards to RtlGenRandom (advapi32 SystemFunction036). It is
 * built by cmd/keyescrow/wine_linux_test.go into a throw-away Wine prefix;
 * it is never shipped. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
	while (len > 0) {
		ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
		if (!SystemFunction036(data, n)) return FALSE;
		data += n; len -= n;
	}
	return TRUE;
}
