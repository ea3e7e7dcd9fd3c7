/* Check-only stand-in for Apple's TargetConditionals.h, so C in build scripts (ring) compiles
 * for aarch64-apple-darwin without an Apple SDK (tests/cross/run). Nothing built with it is
 * linked or shipped: macOS is compiled and linted here, never run. */
#ifndef TARGET_CONDITIONALS_STANDIN_H
#define TARGET_CONDITIONALS_STANDIN_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_MACCATALYST 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_BRIDGE 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 0
#define TARGET_OS_DRIVERKIT 0
#define TARGET_CPU_ARM64 1
#define TARGET_CPU_X86_64 0
#define TARGET_RT_LITTLE_ENDIAN 1
#define TARGET_RT_64_BIT 1
#endif
