#pragma once
// An spdlog sink writing to the systemd journal: the message with its priority, and the fields of
// the line (LogFields) as VHOTPLUG_DEVICE=, VHOTPLUG_VM= and VHOTPLUG_CALLER=. spdlog's own
// systemd sink sends only the message, the priority and the identifier.
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>

namespace vhp {

class JournalSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(std::string identifier) : identifier_(std::move(identifier)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override {}

 private:
  std::string identifier_;
};

}  // namespace vhp
