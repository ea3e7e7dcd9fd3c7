/* Test-only shim, never shipped: Rust's standard library (since 1.78) draws its randomness from
 * ProcessPrng in bcryptprimitives.dll, which Wine 8 does not export. This forwards to
 * RtlGenRandom (SystemFunction036 in advapi32), which Wine implements, so the cross-built tests
 * and CLI start under Wine. Built by tests/windows/run next to the executables. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) { return RtlGenRandom(data, (ULONG)len); }
