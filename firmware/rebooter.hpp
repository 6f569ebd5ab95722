#pragma once
// Rebooter: the seam through which an update asks for a reboot. Production runs a command from
// config (CommandRebooter, e.g. `systemctl reboot`); tests record the call and play the
// bootloader themselves.
#include <chrono>
#include <string>
#include <vector>

#include "shared/core/clock.hpp"
#include "shared/core/error.hpp"

namespace edge::firmware {

class Rebooter {
public:
    virtual ~Rebooter() = default;
    /// Asks the system to reboot and returns once the request was accepted; the process is
    /// usually stopped shortly after, so callers persist everything first. An error means the
    /// request was refused or could not be made. Blocking (bounded), not thread-safe.
    [[nodiscard]] virtual Status reboot() = 0;
};

class CommandRebooter final : public Rebooter {
public:
    /// argv runs without a shell; clock must outlive this object.
    CommandRebooter(std::vector<std::string> argv, const Clock& clock,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));
    /// kCommand when the command cannot start, times out or exits non-zero.
    [[nodiscard]] Status reboot() override;

private:
    std::vector<std::string> argv_;
    const Clock& clock_;
    std::chrono::milliseconds timeout_;
};

}  // namespace edge::firmware
