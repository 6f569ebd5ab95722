#include "firmware/errors.hpp"

#include <string>

namespace edge::firmware {
namespace {

class FirmwareCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.firmware"; }
    std::string message(int c) const override {
        switch (static_cast<FirmwareErrc>(c)) {
            case FirmwareErrc::kBootControl:
                return "boot control error";
            case FirmwareErrc::kNotBootable:
                return "no bootable slot";
            case FirmwareErrc::kCommand:
                return "command failed";
            case FirmwareErrc::kSize:
                return "image size mismatch";
            case FirmwareErrc::kDigest:
                return "image digest mismatch";
            case FirmwareErrc::kIo:
                return "i/o error";
            case FirmwareErrc::kBadTransition:
                return "transition not allowed";
            case FirmwareErrc::kLoopGuard:
                return "update loop guard";
            case FirmwareErrc::kState:
                return "update state corrupt";
            case FirmwareErrc::kRefused:
                return "update refused";
            case FirmwareErrc::kHealth:
                return "health check failed";
            case FirmwareErrc::kInvalidArgument:
                return "invalid argument";
            case FirmwareErrc::kInterrupted:
                return "interrupted";
        }
        return "unknown firmware error";
    }
};

}  // namespace

const std::error_category& firmwareCategory() noexcept {
    static const FirmwareCategory category;
    return category;
}

std::error_code make_error_code(FirmwareErrc e) noexcept {
    return {static_cast<int>(e), firmwareCategory()};
}

}  // namespace edge::firmware
