#pragma once
#include "firmware/errors.hpp"
#include "firmware/rebooter.hpp"

namespace edge::test {

/// Records reboot requests instead of rebooting; refuses them when told to.
class FakeRebooter final : public firmware::Rebooter {
public:
    Status reboot() override {
        ++calls;
        if (refuse) return fail(firmware::FirmwareErrc::kCommand, "'systemctl reboot' exited with status 1: refused");
        return {};
    }
    int calls = 0;
    bool refuse = false;
};

}  // namespace edge::test
