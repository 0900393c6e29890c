// The USBHub JSON-RPC rules and DeviceMetadata, without sockets.
#include <gtest/gtest.h>

#include "thunder/jsonrpc.h"
#include "thunder/metadata.h"

namespace vhp::thunder::thunder_rpc_test {
namespace {

using json = nlohmann::json;

UsbDevice key() {
  UsbDevice d;
  d.sys_path = "/sys/devices/usb1/1-2/1-2.1", d.sys_name = "1-2.1", d.device_node = "/dev/bus/usb/001/003";
  d.vid = "1050", d.pid = "0407", d.busnum = 1, d.devnum = 3, d.ports = {2, 1};
  d.parent_sys_name = "1-2", d.parent_devnum = 2;
  d.manufacturer = "Yubico", d.product = "YubiKey OTP+FIDO+CCID", d.serial = "12345";
  d.language_id = 0x0409, d.configured = true, d.speed = UsbSpeed::Full;
  return d;
}

TEST(Metadata, AllTwentyMembersWithOurDocumentedDerivations) {
  EXPECT_EQ(device_metadata(key(), true, "/dev/bus/usb/001/003").dump(),
            R"({"deviceName":"001/003","parentId":258,"status":"STATUS_ACTIVE","deviceLevel":2,"portNumber":1,"protocol":0,)"
            R"("busSpeed":"SPEED_FULL","serialNumber":"12345","flags":"FLAGS_SWITCHABLE","vendorId":4176,"productId":1031,)"
            R"("deviceClass":0,"deviceSubclass":0,"devicePath":"/dev/bus/usb/001/003","features":0,"numLanguageIds":1,)"
            R"("productInfo1":{"languageId":9,"serialNumber":"12345","manufacturer":"Yubico","product":"YubiKey OTP+FIDO+CCID"},)"
            R"("productInfo2":{"languageId":0,"serialNumber":"","manufacturer":"","product":""},)"
            R"("productInfo3":{"languageId":0,"serialNumber":"","manufacturer":"","product":""},)"
            R"("productInfo4":{"languageId":0,"serialNumber":"","manufacturer":"","product":""}})");
}

TEST(Metadata, StatusSpeedStorageAndRootHub) {
  auto d = key();
  d.self_powered = true;
  EXPECT_EQ(device_metadata(d, false, "")["status"], "STATUS_SELF_POWERED");
  EXPECT_EQ(device_metadata(d, false, "")["flags"], "FLAGS_AVAILABLE");
  d.configured = false;
  EXPECT_EQ(device_metadata(d, false, "")["status"], "STATUS_NO_DEVICE_CONNECTED");
  for (auto [speed, name] : {std::pair{UsbSpeed::Low, "SPEED_LOW"}, {UsbSpeed::High, "SPEED_HIGH"}, {UsbSpeed::Super, "SPEED_SUPER"},
                             {UsbSpeed::SuperPlus, "SPEED_SUPER"}, {UsbSpeed::SuperPlusX2, "SPEED_SUPER"}, {UsbSpeed::Unknown, "SPEED_FULL"}}) {
    d.speed = speed;
    EXPECT_EQ(device_metadata(d, false, "")["busSpeed"], name);
  }
  d.interface_list = {{0, 8, 6, 0x50}};
  auto storage = device_metadata(d, false, "/dev/sda");
  EXPECT_EQ(storage["deviceClass"], 8);
  EXPECT_EQ(storage["deviceSubclass"], 6);
  EXPECT_EQ(storage["devicePath"], "/dev/sda");
  UsbDevice root = key();
  root.ports.clear(), root.parent_devnum = 0, root.language_id = 0;
  auto r = device_metadata(root, false, "");
  EXPECT_EQ(r["parentId"], 0);
  EXPECT_EQ(r["deviceLevel"], 0);
  EXPECT_EQ(r["portNumber"], 0);
  EXPECT_EQ(r["numLanguageIds"], 0);
  EXPECT_EQ(r["productInfo1"]["languageId"], 0);
}

class Rpc : public testing::Test {
 protected:
  std::string call(const std::string& text) {
    auto reply = rpc.handle(text, channel);
    return reply.message ? reply.message->dump() : "(none)";
  }
  JsonRpc rpc{"USBHub", Devices{[] { return std::vector<UsbDevice>{key()}; },
                                [](const UsbDevice& d) { return device_metadata(d, false, d.device_node); }}};
  Channel channel;
};

TEST_F(Rpc, Methods) {
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"})"), R"({"jsonrpc":"2.0","id":1,"result":["001/003"]})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":2,"method":"USBHub.devices"})"), R"({"jsonrpc":"2.0","id":2,"result":["001/003"]})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":3,"method":"USBHub.1.vendorDevices","params":{"vendorId":4176,"productId":1031}})"),
            R"({"jsonrpc":"2.0","id":3,"result":["001/003"]})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":4,"method":"USBHub.1.vendorDevices","params":{"vendorId":"0x1050","productId":"1031"}})"),
            R"({"jsonrpc":"2.0","id":4,"result":["001/003"]})");  // Thunder accepts quoted numbers
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":5,"method":"USBHub.1.vendorDevices","params":{"vendorId":1,"productId":2}})"),
            R"({"jsonrpc":"2.0","id":5,"result":[]})");
  EXPECT_EQ(json::parse(call(R"({"jsonrpc":"2.0","id":6,"method":"USBHub.1.device","params":{"deviceName":"001/003"}})"))["result"]["vendorId"], 4176);
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":7,"method":"USBHub.1.exists","params":{"method":"device"}})"), R"({"jsonrpc":"2.0","id":7,"result":true})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":8,"method":"USBHub.1.versions"})"),
            R"({"jsonrpc":"2.0","id":8,"result":[{"name":"JUSBHub","major":1,"minor":0,"patch":0}]})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":"9","method":"USBHub.1.devices"})"), R"({"jsonrpc":"2.0","id":9,"result":["001/003"]})");
}

TEST_F(Rpc, RegisterAndUnregister) {
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.register","params":{"event":"announce","id":"client.events"}})"),
            R"({"jsonrpc":"2.0","id":1,"result":null})");
  EXPECT_EQ(channel.subscriptions.size(), 1u);
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":2,"method":"USBHub.1.register","params":{"event":"announce","id":"client.events"}})"),
            R"({"jsonrpc":"2.0","id":2,"error":{"code":-31048,"message":"Registration failed."}})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":3,"method":"USBHub.1.unregister","params":{"event":"announce","id":"client.events"}})"),
            R"({"jsonrpc":"2.0","id":3,"result":null})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":4,"method":"USBHub.1.unregister","params":{"event":"announce","id":"client.events"}})"),
            R"({"jsonrpc":"2.0","id":4,"error":{"code":-31049,"message":"Unregister failed."}})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":5,"method":"USBHub.1.register","params":{"event":"announce"}})"),
            R"({"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"Invalid parameters."}})");
}

TEST_F(Rpc, Errors) {
  auto error = [&](const std::string& text) { return json::parse(call(text))["error"].dump(); };
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device","params":{"deviceName":"009/009"}})"),
            R"({"code":-31022,"message":"ERROR_UNKNOWN_KEY"})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device"})"), R"({"code":-31030,"message":"ERROR_BAD_REQUEST"})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.device","params":{"deviceName":3}})"), R"({"code":-31030,"message":"ERROR_BAD_REQUEST"})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.vendorDevices","params":{"vendorId":1}})"), R"({"code":-31030,"message":"ERROR_BAD_REQUEST"})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.vendorDevices","params":{"vendorId":70000,"productId":1}})"),
            R"({"code":-31050,"message":"Integer overflow in vendorId"})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.vendorDevices","params":{"vendorId":"abc","productId":1}})"),
            R"({"code":-31050,"message":"Invalid value for vendorId"})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.2.devices"})"), R"({"code":-31038,"message":"Requested version is not supported."})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"USBHub.1.reset"})"), R"({"code":-32601,"message":"Unknown method."})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"Bluetooth.1.devices"})"), R"({"code":-31043,"message":"The service is not available."})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1,"method":"devices"})"), R"({"code":-31043,"message":"The service is not available."})");
  EXPECT_EQ(error(R"({"jsonrpc":"2.0","id":1})"), R"({"code":-32600,"message":"Invalid request."})");
  EXPECT_EQ(call(R"([{"jsonrpc":"2.0","id":1,"method":"USBHub.1.devices"}])"),
            R"({"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid request."}})");  // no batches
  auto bad = rpc.handle("{not json", channel);
  EXPECT_TRUE(bad.parse_error);
  EXPECT_EQ(bad.message->dump(), R"({"jsonrpc":"2.0","id":null,"error":{"code":-31050,"message":"Parsing of the message failed"}})");
  EXPECT_TRUE(rpc.handle(R"({"jsonrpc":"2.0","id":"x1","method":"USBHub.1.devices"})", channel).parse_error);
}

TEST_F(Rpc, ImplicitCallsignAndNotificationsWithoutId) {
  channel.implicit_callsign = "USBHub";
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":1,"method":"1.devices"})"), R"({"jsonrpc":"2.0","id":1,"result":["001/003"]})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","id":2,"method":"devices"})"), R"({"jsonrpc":"2.0","id":2,"result":["001/003"]})");
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":"USBHub.1.devices"})"), "(none)");  // no id, success: no answer
  EXPECT_EQ(call(R"({"jsonrpc":"2.0","method":"USBHub.1.nope"})"), R"({"jsonrpc":"2.0","error":{"code":-32601,"message":"Unknown method."}})");
  EXPECT_EQ(JsonRpc::notification("client.USBHub.events", "announce", {{"deviceName", "001/003"}}).dump(),
            R"({"jsonrpc":"2.0","method":"client.USBHub.events.announce","params":{"device":{"deviceName":"001/003"}}})");
}

}  // namespace
}  // namespace vhp::thunder::thunder_rpc_test
