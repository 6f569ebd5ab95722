#pragma once
// Internal: time zones for the time.* builtins, read from the system's TZif files
// (/usr/share/zoneinfo), with the POSIX TZ footer rule for instants past the last listed
// transition — the same data and the same lookup as Go's time.LoadLocation, which OPA uses.
// (g++ 12's <chrono> has no time zone database.)
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shared/core/error.hpp"

namespace edge::policy::detail {

/// The zone in effect at an instant, and the span [start, end) of unix seconds it covers.
struct ZonePeriod {
    std::string abbrev;
    int offset = 0;  // seconds east of UTC
    bool dst = false;
    std::int64_t start = 0;
    std::int64_t end = 0;
};

class TimeZone {
public:
    [[nodiscard]] static std::shared_ptr<const TimeZone> utc();
    /// The system's zone (/etc/localtime, read once), as Go's time.Local; UTC when absent.
    [[nodiscard]] static std::shared_ptr<const TimeZone> local();
    /// An IANA zone by name ("America/New_York"), loaded once and cached. "" and "UTC" are UTC.
    /// Errors (Go's texts): "time: invalid location name", "unknown time zone <name>".
    [[nodiscard]] static Result<std::shared_ptr<const TimeZone>> load(std::string_view name);
    /// Parses TZif data (versions 1 to 4).
    [[nodiscard]] static Result<std::shared_ptr<const TimeZone>> fromTzif(std::string name,
                                                                          std::string_view data);

    [[nodiscard]] const std::string& name() const { return name_; }
    /// Go's Location.lookup.
    [[nodiscard]] ZonePeriod lookup(std::int64_t unix_sec) const;
    /// The unix seconds of a wall-clock time in this zone (seconds since 1970-01-01T00:00 local),
    /// resolving gaps and overlaps as Go's time.Date does.
    [[nodiscard]] std::int64_t fromLocal(std::int64_t local_sec) const;

    struct ZoneType {
        int offset = 0;
        bool dst = false;
        std::string abbrev;
    };
    struct Transition {
        std::int64_t at = 0;
        std::size_t type = 0;
    };

private:
    std::string name_;
    std::vector<ZoneType> types_;
    std::vector<Transition> transitions_;
    std::string extend_;  // POSIX TZ rule for instants after the last transition
};

}  // namespace edge::policy::detail
