#pragma once
// Error codes of the firmware module (boot control, image install, the update state machine).
#include <system_error>

namespace edge::firmware {

enum class FirmwareErrc {
    kBootControl = 1,  // boot environment unreadable, invalid, or a write to it failed
    kNotBootable,      // a (simulated) bootloader chose no slot to boot
    kCommand,          // an external command could not start, timed out, or exited non-zero
    kSize,             // an image is shorter or longer than its declared size
    kDigest,           // an image's SHA-256 differs from the declared one
    kIo,               // reading an image or writing/reading a slot failed
    kBadTransition,    // (state, event) is not in the update transition table
    kLoopGuard,        // an update made too many transitions; it is stopped
    kState,            // the persisted update record is corrupt or of an unknown schema
    kRefused,          // an update was refused (version failed before, update in progress)
    kHealth,           // the health check failed
    kInvalidArgument,  // a caller passed something unusable (bad digest text, active slot)
    kInterrupted,      // a health check cut short (the daemon stops): no verdict, checked again
};

/// Category named "edge.firmware".
const std::error_category& firmwareCategory() noexcept;
std::error_code make_error_code(FirmwareErrc e) noexcept;

}  // namespace edge::firmware

template <>
struct std::is_error_code_enum<edge::firmware::FirmwareErrc> : std::true_type {};
