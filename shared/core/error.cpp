#include "shared/core/error.hpp"

namespace edge {

std::string Error::what() const {
    if (context_.empty()) return message_;
    return context_ + ": " + message_;
}

Error& Error::wrap(std::string_view context) & {
    if (context_.empty()) {
        context_ = std::string(context);
    } else {
        context_ = std::string(context) + ": " + context_;
    }
    return *this;
}

Error&& Error::wrap(std::string_view context) && {
    wrap(context);
    return std::move(*this);
}

namespace {
class SharedCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "edge.shared"; }
    std::string message(int c) const override {
        switch (static_cast<SharedErrc>(c)) {
            case SharedErrc::kInvalidArgument: return "invalid argument";
            case SharedErrc::kIo: return "i/o error";
            case SharedErrc::kNotFound: return "not found";
            case SharedErrc::kParse: return "parse error";
            case SharedErrc::kConfig: return "configuration error";
            case SharedErrc::kStore: return "store error";
            case SharedErrc::kMqtt: return "mqtt error";
            case SharedErrc::kHttp: return "http error";
            case SharedErrc::kTimeout: return "timeout";
            case SharedErrc::kUnavailable: return "unavailable";
            case SharedErrc::kPathEscape: return "path escapes its directory";
        }
        return "unknown shared error";
    }
};
}  // namespace

const std::error_category& sharedCategory() noexcept {
    static const SharedCategory category;
    return category;
}

}  // namespace edge
