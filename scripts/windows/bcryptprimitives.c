/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the Windows test binaries
 * under Wine 8.0 (scripts/test-windows).
 *
 * Since Rust 1.78, std on Windows gets its random bytes (HashMap's keys, among others)
 * from ProcessPrng in bcryptprimitives.dll, imported at load time (raw-dylib), so every
 * Rust program imports it. Wine 8.0, Debian 12's, has no bcryptprimitives.dll (Wine 8.13
 * added it; 9.0 is the first stable release with it), so every .exe fails to load: exit
 * code 53, and nothing printed with WINEDEBUG=-all. This DLL exports that one function,
 * forwarding to advapi32's SystemFunction036 (RtlGenRandom), which Wine 8.0 has.
 *
 * Built by scripts/test-windows (x86_64-w64-mingw32-gcc -shared, with
 * bcryptprimitives.def beside this file for the export, and -ladvapi32)
 * and copied into the Wine prefix's drive_c/windows/system32/, never shipped.
 */
#include <windows.h>

/* RtlGenRandom, exported from advapi32 under this name (ntsecapi.h declares it as
 * RtlGenRandom through a macro, with the same signature). */
BOOLEAN WINAPI SystemFunction036(PVOID RandomBuffer, ULONG RandomBufferLength);

/* Fills pbData with cbData random bytes; always TRUE, as on Windows (std panics if it
 * is not). SystemFunction036 takes a ULONG length, so a larger request goes in pieces. */
BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData)
{
    while (cbData > 0) {
        ULONG chunk = cbData > 0x10000000 ? 0x10000000 : (ULONG)cbData;
        if (!SystemFunction036(pbData, chunk))
            return FALSE;
        pbData += chunk;
        cbData -= chunk;
    }
    return TRUE;
}
