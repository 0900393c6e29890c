// How the reference CLI (Python) shows JSON values, which vhotplugcli must print byte for byte.
#include <gtest/gtest.h>

#include "api/python_text.h"

namespace vhp::python_text_test {
namespace {

using json = nlohmann::ordered_json;

TEST(PythonText, StrOfAListFieldValue) {
  EXPECT_EQ(python_str(json(nullptr)), "None");
  EXPECT_EQ(python_str(json(true)), "True");
  EXPECT_EQ(python_str(json(false)), "False");
  EXPECT_EQ(python_str(json(12)), "12");
  EXPECT_EQ(python_str(json(1.5)), "1.5");
  EXPECT_EQ(python_str(json("Yubico.com")), "Yubico.com");  // a str is printed as it is
  EXPECT_EQ(python_str(json::array({"vm1", "vm2"})), "['vm1', 'vm2']");
  EXPECT_EQ(python_str(json::array()), "[]");
  EXPECT_EQ(python_str(json::parse(R"({"k":"v","n":null})")), "{'k': 'v', 'n': None}");
}

TEST(PythonText, ReprQuotesAsPythonDoes) {
  EXPECT_EQ(python_repr(json("a")), "'a'");
  EXPECT_EQ(python_repr(json("l'USB")), "\"l'USB\"");  // a single quote inside: double quotes
  EXPECT_EQ(python_repr(json("both ' and \"")), "'both \\' and \"'");
  EXPECT_EQ(python_repr(json("back\\slash\ttab\nline")), "'back\\\\slash\\ttab\\nline'");
  EXPECT_EQ(python_repr(json("\x01")), "'\\x01'");
  EXPECT_EQ(python_repr(json("Caméra")), "'Caméra'");  // printable non-ASCII stays
  EXPECT_EQ(python_repr(json::parse(R"({"event":"usb_attached","usb_device":{"vid":"1050","serial":null},"vm":"vm1"})")),
            "{'event': 'usb_attached', 'usb_device': {'vid': '1050', 'serial': None}, 'vm': 'vm1'}");
}

}  // namespace
}  // namespace vhp::python_text_test
