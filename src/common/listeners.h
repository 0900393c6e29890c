#pragma once
// A list of callbacks with RAII subscriptions. Single-threaded. Listeners may subscribe or
// unsubscribe (themselves or others) while an event is being delivered.
#include <functional>
#include <map>
#include <memory>
#include <utility>
#include <vector>

namespace vhp {

class Subscription {
 public:
  Subscription() = default;
  Subscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  Subscription(Subscription&& other) noexcept : cancel_(std::exchange(other.cancel_, nullptr)) {}
  Subscription& operator=(Subscription&& other) noexcept {  // drops the subscription it held
    if (this != &other) {
      reset();
      cancel_ = std::exchange(other.cancel_, nullptr);
    }
    return *this;
  }
  ~Subscription() { reset(); }
  void reset() {
    if (cancel_) std::exchange(cancel_, nullptr)();
  }

 private:
  std::function<void()> cancel_;
};

template <class Event>
class Listeners {
 public:
  using Listener = std::function<void(const Event&)>;

  [[nodiscard]] Subscription subscribe(Listener listener) {
    int id = next_id_++;
    map_->emplace(id, std::make_shared<Listener>(std::move(listener)));
    std::weak_ptr<Map> weak = map_;
    return Subscription([weak, id] {
      if (auto map = weak.lock()) map->erase(id);
    });
  }

  void publish(const Event& event) {
    // Walk a copy of the ids, skipping any dropped meanwhile; ones added meanwhile hear the next event.
    std::vector<int> ids;
    for (const auto& entry : *map_) ids.push_back(entry.first);
    for (int id : ids) {
      auto it = map_->find(id);
      if (it == map_->end()) continue;
      auto listener = it->second;  // alive even if it unsubscribes itself
      (*listener)(event);
    }
  }

 private:
  using Map = std::map<int, std::shared_ptr<Listener>>;
  std::shared_ptr<Map> map_ = std::make_shared<Map>();
  int next_id_ = 1;
};

}  // namespace vhp
