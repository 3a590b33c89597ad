// The agent's settings: command-line flag > SWRDMA_<FLAG> environment variable > TOML config file
// > default, and every present but invalid value is an error naming its source and key.
#include "agent/agent_config.h"

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <CLI/CLI.hpp>

#include "tests/test_util.h"

namespace swrdma::agent {
namespace {

using ::swrdma::testing::TempDir;

class AgentConfigTest : public ::testing::Test {
 protected:
  // Parses `args` with the fake environment and default config file of this fixture.
  Result<ConfigSources> Parse(std::vector<std::string> args) {
    CLI::App app;
    config_ = AgentConfig{};
    return ParseAgentConfig(
        app, config_, args,
        [this](const std::string& name) -> std::optional<std::string> {
          auto it = env_.find(name);
          if (it == env_.end()) return std::nullopt;
          return it->second;
        },
        default_file_);
  }
  std::filesystem::path WriteFile(const std::string& name, const std::string& text) {
    auto p = dir_ / name;
    std::ofstream(p) << text;
    return p;
  }

  TempDir dir_;
  std::map<std::string, std::string> env_;
  std::filesystem::path default_file_ = dir_ / "absent-default.toml";
  AgentConfig config_;
};

TEST_F(AgentConfigTest, EnvNamesAreUpperSnakeCase) {
  EXPECT_EQ(EnvNameOf("http-threads"), "SWRDMA_HTTP_THREADS");
  EXPECT_EQ(EnvNameOf("dir"), "SWRDMA_DIR");
  EXPECT_EQ(EnvNameOf("jwt-read-key"), "SWRDMA_JWT_READ_KEY");
}

TEST_F(AgentConfigTest, DefaultsWithoutAnySource) {
  auto sources = Parse({});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_FALSE(sources->file);
  EXPECT_TRUE(sources->env.empty());
  EXPECT_EQ(config_.http_threads, 2);
  EXPECT_EQ(config_.http, std::vector<std::string>{"0.0.0.0:18515"});
  EXPECT_TRUE(config_.supervise);
  EXPECT_FALSE(config_.config_file);
}

TEST_F(AgentConfigTest, FlagBeatsEnvBeatsFileBeatsDefault) {
  const auto file = WriteFile("agent.toml",
                              "# comment\n"
                              "http_threads = 3\n"
                              "max_connections = 30\n"
                              "max_lookup_batch = 300\n"
                              "log_level = \"warn\"\n");
  env_["SWRDMA_HTTP_THREADS"] = "4";
  env_["SWRDMA_MAX_CONNECTIONS"] = "40";
  auto sources = Parse({"--config", file.string(), "--http-threads", "5"});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.http_threads, 5);         // flag
  EXPECT_EQ(config_.max_connections, 40u);    // env over file
  EXPECT_EQ(config_.max_lookup_batch, 300u);  // file over default
  EXPECT_EQ(config_.log_level, "warn");
  EXPECT_EQ(config_.retire_grace, std::chrono::seconds(10));  // default
  ASSERT_TRUE(sources->file);
  EXPECT_EQ(*sources->file, file);
  EXPECT_EQ(sources->env,
            (std::vector<std::string>{"SWRDMA_HTTP_THREADS", "SWRDMA_MAX_CONNECTIONS"}));
}

TEST_F(AgentConfigTest, HotFirstTimesFromFileFlagAndDefault) {
  auto sources = Parse({});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.hot_first_warmup, std::chrono::seconds(60));
  EXPECT_EQ(config_.hot_first_dwell, std::chrono::seconds(60));
  const auto file = WriteFile("agent.toml", "hot_first_warmup = 0\nhot_first_dwell = 5\n");
  sources = Parse({"--config", file.string()});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.hot_first_warmup, std::chrono::seconds(0));
  EXPECT_EQ(config_.hot_first_dwell, std::chrono::seconds(5));
  sources = Parse({"--config", file.string(), "--hot-first-dwell", "7"});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.hot_first_dwell, std::chrono::seconds(7));
  EXPECT_NE(DescribeConfig(config_).find("hot_first_warmup=0s hot_first_dwell=7s"),
            std::string::npos)
      << DescribeConfig(config_);
  EXPECT_THROW(Parse({"--hot-first-warmup", "-1"}), CLI::ValidationError);
}

TEST_F(AgentConfigTest, ListsFromEverySourceReplaceRatherThanMerge) {
  std::filesystem::create_directories(dir_ / "a");
  std::filesystem::create_directories(dir_ / "b");
  std::filesystem::create_directories(dir_ / "c");
  const auto file = WriteFile("agent.toml", "dir = [\"" + (dir_ / "a").string() + "\"]\n" +
                                                "http = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n");
  env_["SWRDMA_CONFIG"] = file.string();
  auto sources = Parse({});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.dirs, std::vector<std::filesystem::path>{dir_ / "a"});
  EXPECT_EQ(config_.http, (std::vector<std::string>{"127.0.0.1:1", "127.0.0.1:2"}));

  env_["SWRDMA_DIR"] = (dir_ / "b").string() + "," + (dir_ / "c").string();
  sources = Parse({});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.dirs, (std::vector<std::filesystem::path>{dir_ / "b", dir_ / "c"}));

  sources = Parse({"--dir", (dir_ / "a").string()});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.dirs, std::vector<std::filesystem::path>{dir_ / "a"});
}

TEST_F(AgentConfigTest, BooleansAndOptionalStrings) {
  const auto file = WriteFile("agent.toml",
                              "supervise = false\nrequire_transports = true\n"
                              "transports = \"tcp\"\nexport_mode = \"copy\"\n");
  env_["SWRDMA_JWT_READ_KEY"] = "s3cret";
  env_["SWRDMA_PROGRESS"] = "busy";
  auto sources = Parse({"--config", file.string()});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_FALSE(config_.supervise);
  EXPECT_TRUE(config_.require_transports);
  EXPECT_EQ(config_.transports, "tcp");
  EXPECT_EQ(config_.export_mode, ExportMode::kCopy);
  EXPECT_EQ(config_.progress_mode, ProgressMode::kBusy);
  EXPECT_EQ(config_.jwt_read_key, "s3cret");
  const std::string line = DescribeConfig(config_);
  EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
  EXPECT_NE(line.find("jwt_read_key=(set)"), std::string::npos) << line;

  env_["SWRDMA_SUPERVISE"] = "yes";  // env beats the file's false
  sources = Parse({"--config", file.string()});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_TRUE(config_.supervise);
  sources = Parse({"--config", file.string(), "--no-supervise"});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_FALSE(config_.supervise);
}

// The UCX tcp segment: 64 KiB unless set; from the file, the environment or the flag; 0 keeps
// UCX's default; beyond 16 MiB is refused with the source named.
TEST_F(AgentConfigTest, TcpSegmentSizeFromEverySource) {
  ASSERT_TRUE(Parse({}));
  EXPECT_EQ(config_.tcp_segment_bytes, 65536u);
  const auto file = WriteFile("seg.toml", "tcp_segment_size = 131072\n");
  ASSERT_TRUE(Parse({"--config", file.string()}));
  EXPECT_EQ(config_.tcp_segment_bytes, 131072u);
  env_["SWRDMA_TCP_SEGMENT_SIZE"] = "0";
  ASSERT_TRUE(Parse({"--config", file.string()}));
  EXPECT_EQ(config_.tcp_segment_bytes, 0u);
  ASSERT_TRUE(Parse({"--tcp-segment-size", "32768"}));
  EXPECT_EQ(config_.tcp_segment_bytes, 32768u);
  env_["SWRDMA_TCP_SEGMENT_SIZE"] = "99999999999";
  auto bad = Parse({});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("SWRDMA_TCP_SEGMENT_SIZE"), std::string::npos)
      << bad.error().message();
}

TEST_F(AgentConfigTest, DefaultFileIsReadOnlyWhenItExists) {
  default_file_ = WriteFile("default.toml", "http_threads = 7\n");
  auto sources = Parse({});
  ASSERT_TRUE(sources) << sources.error().ToString();
  EXPECT_EQ(config_.http_threads, 7);
  EXPECT_EQ(config_.config_file, default_file_);
}

TEST_F(AgentConfigTest, InvalidEnvironmentValueNamesTheVariable) {
  env_["SWRDMA_HTTP_THREADS"] = "0";
  auto sources = Parse({"--http-threads", "3"});  // overridden, still checked
  ASSERT_FALSE(sources);
  EXPECT_EQ(sources.error().code(), Code::kInvalidArgument);
  EXPECT_NE(sources.error().message().find("environment variable SWRDMA_HTTP_THREADS"),
            std::string::npos)
      << sources.error().message();

  env_.clear();
  env_["SWRDMA_SUPERVISE"] = "maybe";
  sources = Parse({});
  ASSERT_FALSE(sources);
  EXPECT_NE(sources.error().message().find("SWRDMA_SUPERVISE"), std::string::npos);

  env_.clear();
  env_["SWRDMA_EXPORT_MODE"] = "mmap";
  sources = Parse({});
  ASSERT_FALSE(sources);
  EXPECT_NE(sources.error().message().find("SWRDMA_EXPORT_MODE"), std::string::npos);
}

TEST_F(AgentConfigTest, InvalidFileValueNamesFileAndKey) {
  const auto file = WriteFile("agent.toml", "rescan_interval = 0\n");
  auto sources = Parse({"--config", file.string()});
  ASSERT_FALSE(sources);
  EXPECT_EQ(sources.error().code(), Code::kInvalidArgument);
  EXPECT_NE(sources.error().message().find(file.string()), std::string::npos);
  EXPECT_NE(sources.error().message().find("key 'rescan_interval'"), std::string::npos)
      << sources.error().message();

  for (const char* bad : {"http_threads = \"many\"\n", "supervise = \"no\"\n",
                          "http_threads = [1, 2]\n", "log_level = \"loud\"\n"}) {
    const auto f = WriteFile("bad.toml", bad);
    sources = Parse({"--config", f.string()});
    ASSERT_FALSE(sources) << bad;
    EXPECT_NE(sources.error().message().find("key '"), std::string::npos)
        << bad << " -> " << sources.error().message();
  }
}

TEST_F(AgentConfigTest, UnknownKeysAndBrokenFilesAreRejected) {
  auto file = WriteFile("agent.toml", "http_treads = 4\n");
  auto sources = Parse({"--config", file.string()});
  ASSERT_FALSE(sources);
  EXPECT_NE(sources.error().message().find("unknown key 'http_treads'"), std::string::npos)
      << sources.error().message();

  file = WriteFile("section.toml", "[agent]\nhttp_threads = 4\n");
  sources = Parse({"--config", file.string()});
  ASSERT_FALSE(sources);
  EXPECT_NE(sources.error().message().find("unknown key 'agent'"), std::string::npos);

  file = WriteFile("syntax.toml", "http_threads = = 4\n");
  sources = Parse({"--config", file.string()});
  ASSERT_FALSE(sources);
  EXPECT_NE(sources.error().message().find("line 1"), std::string::npos)
      << sources.error().message();

  sources = Parse({"--config", (dir_ / "missing.toml").string()});
  ASSERT_FALSE(sources);
  EXPECT_NE(sources.error().message().find("missing.toml"), std::string::npos);
}

// The shipped /etc/swrdma/agent.toml (packaging/agent.toml) documents every flag as a commented
// key with a valid example value: uncommented whole, it parses, and no flag lacks its key.
TEST_F(AgentConfigTest, ShippedFileDocumentsEveryFlagWithValidValues) {
  std::ifstream shipped(std::string(SWRDMA_SOURCE_DIR) + "/packaging/agent.toml");
  ASSERT_TRUE(shipped) << "packaging/agent.toml not found under " << SWRDMA_SOURCE_DIR;
  const std::regex commented_key(R"(^# ([a-z_]+) = (.*)$)");
  std::set<std::string> keys;
  std::ostringstream uncommented;
  for (std::string line; std::getline(shipped, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, commented_key)) continue;
    const std::string key = m[1];
    std::string value = m[2];
    // Paths that must exist where the agent runs point into this test's directory instead.
    if (key == "dir") value = "[\"" + dir_.path().string() + "\"]";
    if (key == "security_toml") {
      value = '"' + WriteFile("security.toml", "[jwt.signing.read]\nkey = \"k\"\n").string() + '"';
    }
    EXPECT_TRUE(keys.insert(key).second) << "key " << key << " appears twice";
    uncommented << key << " = " << value << "\n";
  }
  const auto file = WriteFile("uncommented.toml", uncommented.str());
  auto sources = Parse({"--config", file.string()});
  ASSERT_TRUE(sources) << sources.error().ToString() << "\n" << uncommented.str();

  CLI::App app;
  AgentConfig unused;
  ASSERT_TRUE(ParseAgentConfig(
      app, unused, {}, [](const std::string&) { return std::optional<std::string>(); },
      default_file_));
  for (const CLI::Option* opt : app.get_options()) {
    for (std::string name : opt->get_lnames()) {
      if (name == "help" || name == "version" || name == "config" || name == "list-devices" ||
          name == "no-supervise") {
        continue;  // not settings, or the negation of one
      }
      std::replace(name.begin(), name.end(), '-', '_');
      EXPECT_TRUE(keys.contains(name)) << "packaging/agent.toml does not document " << name;
    }
  }
}

TEST_F(AgentConfigTest, BadFlagsStayCommandLineErrors) {
  EXPECT_THROW(Parse({"--http-threads", "0"}), CLI::ValidationError);
  EXPECT_THROW(Parse({"--no-such-flag"}), CLI::ParseError);
}

}  // namespace
}  // namespace swrdma::agent
