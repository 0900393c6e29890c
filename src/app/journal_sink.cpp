#include "app/journal_sink.h"

#include <vector>

#include <sys/uio.h>
#include <syslog.h>
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "common/log_fields.h"

namespace vhp {

namespace {

int priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LOG_DEBUG;
    case spdlog::level::warn: return LOG_WARNING;
    case spdlog::level::err: return LOG_ERR;
    case spdlog::level::critical: return LOG_CRIT;
    default: return LOG_INFO;
  }
}

}  // namespace

void JournalSink::sink_it_(const spdlog::details::log_msg& msg) {
  std::vector<std::string> entries;
  entries.reserve(6);
  entries.push_back("MESSAGE=" + std::string(msg.payload.data(), msg.payload.size()));
  entries.push_back("PRIORITY=" + std::to_string(priority(msg.level)));
  entries.push_back("SYSLOG_IDENTIFIER=" + identifier_);
  if (const LogFields* fields = LogFields::current()) {
    if (!fields->device().empty()) entries.push_back("VHOTPLUG_DEVICE=" + fields->device());
    if (!fields->vm().empty()) entries.push_back("VHOTPLUG_VM=" + fields->vm());
    if (!fields->caller().empty()) entries.push_back("VHOTPLUG_CALLER=" + fields->caller());
  }
  std::vector<iovec> iov;
  iov.reserve(entries.size());
  for (auto& e : entries) iov.push_back({e.data(), e.size()});
  // A journal that cannot take the line loses it: there is nowhere else to say so.
  (void)sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
}

}  // namespace vhp
