#pragma once
// A non-owning reference to a callable: cheap continuations for the evaluator's backtracking.
#include <memory>
#include <type_traits>
#include <utility>

namespace edge::policy {

template <class Sig>
class FnRef;

template <class R, class... A>
class FnRef<R(A...)> {
public:
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FnRef>>>
    FnRef(F&& f)  // NOLINT: implicit on purpose, like std::function_ref
        : obj_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
          call_([](void* o, A... a) -> R {
              return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<A>(a)...);
          }) {}
    R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

private:
    void* obj_;
    R (*call_)(void*, A...);
};

}  // namespace edge::policy
