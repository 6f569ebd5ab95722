#pragma once
// Error and Result<T>: the one error type that crosses module boundaries.
// An Error has a code (an enum of the module that raised it, through std::error_code) and a
// message; each layer adds context with wrap(), so the final text reads outermost-first:
//   "apply bundle: verify: signature threshold not met (1 of 2)".
#include <expected>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace edge {

class Error {
public:
    Error() = default;
    Error(std::error_code code, std::string message)
        : code_(code), message_(std::move(message)) {}

    [[nodiscard]] std::error_code code() const noexcept { return code_; }
    /// The innermost message, without context.
    [[nodiscard]] const std::string& message() const noexcept { return message_; }
    /// Context joined outermost-first with the message: "ctx: ctx: message".
    [[nodiscard]] std::string what() const;
    /// Prepends a context to the message chain; returns *this for chaining.
    Error& wrap(std::string_view context) &;
    Error&& wrap(std::string_view context) &&;

private:
    std::error_code code_;
    std::string message_;
    std::string context_;  // "outer: inner" already joined
};

template <class T>
using Result = std::expected<T, Error>;
using Status = Result<void>;

/// Builds an unexpected Error from any error-code enum of the project.
template <class E>
[[nodiscard]] std::unexpected<Error> fail(E code, std::string message) {
    return std::unexpected(Error(make_error_code(code), std::move(message)));
}

[[nodiscard]] inline std::unexpected<Error> fail(Error err) { return std::unexpected(std::move(err)); }

/// Errors of the shared libraries (config, store, mqtt, http, io).
enum class SharedErrc {
    kInvalidArgument = 1,
    kIo,
    kNotFound,
    kParse,
    kConfig,
    kStore,
    kMqtt,
    kHttp,
    kTimeout,
    kUnavailable,
    kPathEscape,
};

const std::error_category& sharedCategory() noexcept;
inline std::error_code make_error_code(SharedErrc e) noexcept {
    return {static_cast<int>(e), sharedCategory()};
}

}  // namespace edge

template <>
struct std::is_error_code_enum<edge::SharedErrc> : std::true_type {};
