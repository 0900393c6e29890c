#include "device/block_devices.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

namespace vhp {

namespace fs = std::filesystem;

std::optional<std::string> block_device_node(const std::string& usb_sys_path) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/sys/class/block", ec)) {
    if (fs::exists(entry.path() / "partition", ec)) continue;  // the disk, not its partitions
    auto target = fs::canonical(entry.path(), ec);
    if (!ec && target.string().starts_with(usb_sys_path + "/")) return "/dev/" + entry.path().filename().string();
  }
  return std::nullopt;
}

namespace {

std::string first_line(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// Adds `name` and, recursively, what holds it (a partition's dm-crypt, an LVM volume), by "major:minor".
void add_with_holders(const fs::path& class_block, const std::string& name, std::map<std::string, std::string>& by_dev, int depth = 0) {
  if (depth > 16) return;  // holders form a DAG; this only bounds a malformed tree
  auto dev = first_line(class_block / name / "dev");
  if (dev.empty() || by_dev.contains(dev)) return;
  by_dev[dev] = name;
  std::error_code ec;
  for (const auto& holder : fs::directory_iterator(class_block / name / "holders", ec))
    add_with_holders(class_block, holder.path().filename().string(), by_dev, depth + 1);
}

// Whether a block device (its canonical sysfs path) sits below `root`: directly, or as a namespace
// head of an NVMe subsystem (native multipath, the default in Debian's kernel) one of whose
// controllers is below `root`.
bool below(const fs::path& block, const std::string& root) {
  if (block.string().starts_with(root + "/")) return true;
  if (block.string().find("/nvme-subsystem/") == std::string::npos) return false;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(block.parent_path(), ec)) {  // nvme-subsysN: its controllers are links
    if (!entry.is_symlink(ec)) continue;
    auto controller = fs::canonical(entry.path(), ec);
    if (!ec && controller.string().starts_with(root + "/")) return true;
  }
  return false;
}

// "/dev/nvme0n1p2" or "/dev/mapper/root" → the kernel's name ("nvme0n1p2", "dm-0"); "" otherwise.
std::string kernel_name(const std::string& source) {
  if (!source.starts_with("/dev/")) return "";
  std::error_code ec;
  auto resolved = fs::canonical(source, ec);
  return (ec ? fs::path(source) : resolved).filename().string();
}

}  // namespace

bool HostMount::boots_the_host() const {
  for (const char* system : {"/", "/boot", "/usr", "/nix"})
    if (mount_point == system || (std::string(system) != "/" && mount_point.starts_with(std::string(system) + "/"))) return true;
  return false;
}

std::string describe(const std::vector<HostMount>& mounts) {
  std::string list;
  for (const auto& m : mounts) list += (list.empty() ? "" : ", ") + m.describe();
  return list;
}

std::string storage_fingerprint(const HostInterfaces& host) {
  std::string print;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(host.sys) / "class" / "block", ec)) print += entry.path().filename().string() + '/';
  if (print.empty()) return print;  // no block device: nothing can be mounted from one
  for (const auto& file : {host.mountinfo, host.swaps}) {
    print += '\0';
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char chunk[4096];
    for (ssize_t n; (n = ::read(fd, chunk, sizeof chunk)) > 0;) print.append(chunk, static_cast<std::size_t>(n));
    ::close(fd);
  }
  return print;
}

std::vector<HostMount> mounts_behind(const std::string& sys_path, const HostInterfaces& host) {
  return BlockDevices(host).mounts_behind(sys_path);
}

BlockDevices::BlockDevices(HostInterfaces host) : host_(std::move(host)) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(host_.sys) / "class" / "block", ec)) {
    std::error_code ignored;
    auto target = fs::canonical(entry.path(), ignored);
    if (!ignored) resolved_.emplace_back(entry.path().filename().string(), target.string());
  }
}

std::vector<std::string> BlockDevices::below(const std::string& sys_path) const {
  std::vector<std::string> names;
  if (resolved_.empty()) return names;
  std::error_code ec;
  auto root = fs::canonical(sys_path, ec);
  if (ec) return names;
  for (const auto& [name, target] : resolved_)
    if (vhp::below(target, root.string())) names.push_back(name);
  return names;
}

bool BlockDevices::any_below(const std::string& sys_path) const { return !below(sys_path).empty(); }

std::vector<HostMount> BlockDevices::mounts_behind(const std::string& sys_path) const {
  fs::path class_block = fs::path(host_.sys) / "class" / "block";
  std::map<std::string, std::string> by_dev;  // "259:1" → "nvme0n1p1"
  for (const auto& name : below(sys_path)) add_with_holders(class_block, name, by_dev);
  std::vector<HostMount> found;
  if (by_dev.empty()) return found;
  std::set<std::string> names;
  for (const auto& [dev, name] : by_dev) names.insert(name);
  std::ifstream in(host_.mountinfo);
  for (std::string line; std::getline(in, line);) {
    auto m = parse_mountinfo_line(line);
    if (!m) continue;
    if (auto it = by_dev.find(m->dev); it != by_dev.end()) found.push_back({m->mount_point, it->second});
    else if (auto name = kernel_name(m->source); names.contains(name)) found.push_back({m->mount_point, name});
  }
  std::ifstream swap_list(host_.swaps);
  std::string header;
  std::getline(swap_list, header);  // "Filename Type Size Used Priority"
  for (std::string line; std::getline(swap_list, line);) {
    std::string file;
    std::istringstream(line) >> file;
    if (auto name = kernel_name(file); names.contains(name)) found.push_back({"swap", name});
  }
  return found;
}

std::optional<MountinfoLine> parse_mountinfo_line(const std::string& line) {
  // The device, the mount point, and after " - " the type and the source.
  std::istringstream fields(line);
  std::string id, parent, fs_root;
  MountinfoLine m;
  if (!(fields >> id >> parent >> m.dev >> fs_root >> m.mount_point)) return std::nullopt;
  std::string type;
  if (auto dash = line.find(" - "); dash != std::string::npos) std::istringstream(line.substr(dash + 3)) >> type >> m.source;
  return m;
}

}  // namespace vhp
