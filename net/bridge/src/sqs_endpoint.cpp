// sqs_endpoint: see troupe/bridge/sqs_endpoint.hpp. The request model and the
// two wire formats are sqs_model.hpp's; this file owns the queues (their
// directory, their settings, their actors) and the executor that runs one
// parsed request against them, answering through a callback: nothing here
// waits on an actor, a long poll is held by the queue actor and answered
// through ref::ask's callback form.
//
// Files: each queue is <name>.<generation>.sqlite plus <name>.json (its SQS
// attributes and generation) in data_dir. The generation changes each time a
// name is created again, so that a deleted queue's actor, still closing its
// file, never touches the files of the queue created after it under the same
// name. The .json is written (to a temporary file, then renamed) after the
// database opened; the files of a generation no .json names are removed at start.
#include "troupe/bridge/sqs_endpoint.hpp"

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "sqs_model.hpp"
#include "troupe/gateway/server.hpp"

namespace troupe::bridge::sqs {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace detail;  // NOLINT(google-build-using-namespace): the model's names, in this file only

namespace {

constexpr std::chrono::seconds ask_timeout{30};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

failure sqs_failure(std::string code, std::string json_type, std::string message, unsigned status = 400) {
  return failure{std::move(code), std::move(json_type), std::move(message), status, true};
}

// The queue's SQS attributes, checked, and what the durable queue makes of them.
struct queue_settings {
  std::map<std::string, std::string> given;  // as CreateQueue sent them (compared on a second CreateQueue)
  std::int64_t visibility_timeout = 30;
  std::int64_t delay_seconds = 0;
  std::int64_t max_message_bytes = std::int64_t{256} * 1024;
  std::int64_t retention_seconds = 345'600;
  std::int64_t wait_seconds = 0;
  bool fifo = false;
  bool content_dedup = false;
  std::string dead_letter_queue;  // a name in this endpoint; empty: none
  std::int64_t max_receive_count = 0;
  std::int64_t created_s = 0;
  std::uint64_t generation = 0;
};

std::int64_t integer_attribute(const std::string& name, const std::string& text, std::int64_t low, std::int64_t high) {
  std::int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc{} || ptr != end || v < low || v > high) {
    throw invalid_parameter("Invalid value for the parameter " + name + ": " + text.substr(0, 64) +
                            " (an integer from " + std::to_string(low) + " to " + std::to_string(high) + ").");
  }
  return v;
}

bool bool_attribute(const std::string& name, const std::string& text) {
  if (text == "true") return true;
  if (text == "false") return false;
  throw invalid_parameter("Invalid value for the parameter " + name + ": " + text.substr(0, 64) + " (true or false).");
}

// The queue name an ARN arn:aws:sqs:<region>:<account>:<name> names, if it is this endpoint's.
std::string name_of_arn(std::string_view arn, const endpoint_config& cfg) {
  const std::string prefix = "arn:aws:sqs:" + cfg.region + ":" + cfg.account + ":";
  if (!arn.starts_with(prefix)) return {};
  return std::string(arn.substr(prefix.size()));
}

// Throws failure.
queue_settings settings_of(std::string_view name, const std::map<std::string, std::string>& attributes,
                           const endpoint_config& cfg) {
  queue_settings s;
  s.given = attributes;
  s.visibility_timeout = cfg.visibility_timeout.count();
  s.max_message_bytes = cfg.max_message_bytes;
  for (const auto& [key, value] : attributes) {
    if (key == "VisibilityTimeout") {
      s.visibility_timeout = integer_attribute(key, value, 0, 43'200);
    } else if (key == "DelaySeconds") {
      s.delay_seconds = integer_attribute(key, value, 0, 900);
    } else if (key == "MaximumMessageSize") {
      s.max_message_bytes = integer_attribute(key, value, 1024, 262'144);
    } else if (key == "MessageRetentionPeriod") {
      s.retention_seconds = integer_attribute(key, value, 60, 1'209'600);  // accepted, not enforced
    } else if (key == "ReceiveMessageWaitTimeSeconds") {
      s.wait_seconds = integer_attribute(key, value, 0, 20);
    } else if (key == "FifoQueue") {
      s.fifo = bool_attribute(key, value);
    } else if (key == "ContentBasedDeduplication") {
      s.content_dedup = bool_attribute(key, value);
    } else if (key == "RedrivePolicy") {
      if (value.empty()) continue;
      boost::system::error_code ec;
      json::parse_options options;
      options.max_depth = 4;
      const json::value doc = json::parse(value, ec, {}, options);
      const json::object* o = !ec && doc.is_object() ? &doc.get_object() : nullptr;
      const json::value* arn = o != nullptr ? o->if_contains("deadLetterTargetArn") : nullptr;
      const json::value* count = o != nullptr ? o->if_contains("maxReceiveCount") : nullptr;
      if (arn == nullptr || !arn->is_string() || count == nullptr) {
        throw invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: Redrive policy is not a JSON object with "
            "deadLetterTargetArn and maxReceiveCount.");
      }
      s.dead_letter_queue = name_of_arn(arn->get_string(), cfg);
      if (!valid_queue_name(s.dead_letter_queue)) {
        throw invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: Dead-letter target " +
            std::string(arn->get_string().subview(0, std::min<std::size_t>(arn->get_string().size(), 200))) +
            " is not a queue of this endpoint (arn:aws:sqs:" + cfg.region + ":" + cfg.account + ":<name>).");
      }
      if (count->is_int64()) {
        s.max_receive_count = integer_attribute("maxReceiveCount", std::to_string(count->get_int64()), 1, 1000);
      } else if (count->is_string()) {
        s.max_receive_count = integer_attribute("maxReceiveCount", std::string(count->get_string()), 1, 1000);
      } else {
        throw invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: maxReceiveCount is not an integer.");
      }
    }
    // Policy, KmsMasterKeyId, KmsDataKeyReusePeriodSeconds, SqsManagedSseEnabled,
    // DeduplicationScope, FifoThroughputLimit, RedriveAllowPolicy: accepted, ignored.
  }
  if (s.fifo != name.ends_with(".fifo")) {
    throw invalid_parameter(s.fifo ? "The name of a FIFO queue can only include alphanumeric characters, hyphens, or "
                                     "underscores, must end with .fifo suffix and be 1 to 80 in length."
                                   : "A queue whose name ends in .fifo needs the attribute FifoQueue=true.");
  }
  if (s.content_dedup && !s.fifo) throw invalid_parameter("ContentBasedDeduplication is only for FIFO queues.");
  if (s.dead_letter_queue == name) throw invalid_parameter("A queue cannot be its own dead-letter queue.");
  return s;
}

// --- message attributes in the durable queue's attribute map: name -> "<DataType>\n<bytes>".

std::map<std::string, std::string> stored_attributes(const message_attributes& attributes) {
  std::map<std::string, std::string> out;
  for (const auto& [name, a] : attributes) out.emplace(name, a.data_type + "\n" + a.value);
  return out;
}

message_attributes loaded_attributes(const std::map<std::string, std::string>& stored) {
  message_attributes out;
  for (const auto& [name, v] : stored) {
    const std::size_t nl = v.find('\n');
    if (nl == std::string::npos) {
      out.emplace(name, attribute_value{"String", v});  // put there by an in-process sender
    } else {
      out.emplace(name, attribute_value{v.substr(0, nl), v.substr(nl + 1)});
    }
  }
  return out;
}

bool attribute_wanted(const std::string& name, const std::vector<std::string>& wanted) {
  for (const std::string& w : wanted) {
    if (w == "All" || w == ".*" || w == name) return true;
    if (w.ends_with(".*") && name.starts_with(std::string_view(w).substr(0, w.size() - 1))) return true;
  }
  return false;
}

std::string message_id_of(std::string_view queue, std::uint64_t generation, std::uint64_t id) {
  std::uint32_t h = 2'166'136'261U;  // FNV-1a of the queue and its generation: ids differ across queues
  for (const char c : queue) h = (h ^ static_cast<std::uint8_t>(c)) * 16'777'619U;
  h = (h ^ static_cast<std::uint32_t>(generation)) * 16'777'619U;
  std::array<char, 48> text{};
  std::snprintf(text.data(), text.size(), "%08" PRIx32 "-%04" PRIx64 "-4%03" PRIx64 "-8%03" PRIx64 "-%012" PRIx64, h,
                (id >> 60) & 0xf, (id >> 48) & 0xfff, (generation & 0xfff), id & std::uint64_t{0xffff'ffff'ffff});
  return text.data();
}

// An error of the durable queue, as SQS would name it.
failure failure_of(const error& e, std::string_view queue) {
  switch (e.code()) {
    case errc::no_such_actor:
    case errc::actor_down:
    case errc::system_stopped:
      return non_existent_queue(queue);
    case errc::queue_full:
      return sqs_failure("OverLimit", "OverLimit", e.text(), 403);
    case errc::invalid_request:
      return invalid_parameter(e.text());
    case errc::invalid_receipt:
      return sqs_failure("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", e.text());
    default:
      return internal_error("the queue " + std::string(queue) + " failed: " + e.text());
  }
}
failure failure_of(const durable::queue_status& s, std::string_view queue) {
  return failure_of(error(s.code, s.text), queue);
}

struct queue_entry {
  ref<durable::queue_protocol> actor;
  queue_settings settings;
};

}  // namespace

// --- the endpoint's state: the queues, the server ----------------------------

struct endpoint::state : std::enable_shared_from_this<endpoint::state> {
  using done_fn = std::function<void(std::variant<response, failure>)>;

  state(troupe::system& s, endpoint_config c) : sys(s), cfg(std::move(c)) {}

  troupe::system& sys;
  endpoint_config cfg;
  std::unique_ptr<gateway::server> server;
  // Known once the server listens, and read by its handlers: a client can only
  // reach the port after start() returned it, so relaxed suffices (a scan of
  // ports arriving earlier would see 0 in its URLs, nothing worse).
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<std::uint64_t> requests{0};

  mutable std::mutex mutex;  // guards queues, next_generation
  std::map<std::string, queue_entry, std::less<>> queues;
  std::uint64_t next_generation = 0;

  [[nodiscard]] std::string base_url() const {
    return "http://" + cfg.address + ":" + std::to_string(bound_port.load(std::memory_order_relaxed));
  }
  [[nodiscard]] std::string url_of(std::string_view name) const {
    return base_url() + "/" + cfg.account + "/" + std::string(name);
  }
  [[nodiscard]] fs::path database_of(std::string_view name, std::uint64_t generation) const {
    return fs::path(cfg.data_dir) / (std::string(name) + "." + std::to_string(generation) + ".sqlite");
  }
  [[nodiscard]] fs::path settings_file_of(std::string_view name) const {
    return fs::path(cfg.data_dir) / (std::string(name) + ".json");
  }

  // The queue name in a queue URL: any host (clients write localhost or the
  // address), the path /<account>/<name>.
  [[nodiscard]] std::string name_of_url(std::string_view url) const {
    std::string_view path = url;
    if (const std::size_t scheme = url.find("://"); scheme != std::string_view::npos) {
      const std::size_t slash = url.find('/', scheme + 3);
      path = slash == std::string_view::npos ? std::string_view{} : url.substr(slash);
    }
    const std::string prefix = "/" + cfg.account + "/";
    if (!path.starts_with(prefix)) return {};
    return std::string(path.substr(prefix.size()));
  }

  // --- queues -------------------------------------------------------------

  // Spawns the queue's actor; the caller holds `mutex`. Throws failure.
  queue_entry open_queue(const std::string& name, queue_settings s) {
    durable::queue_config qc;
    qc.file = database_of(name, s.generation).string();
    qc.fifo = s.fifo;
    qc.visibility_timeout = std::chrono::seconds(s.visibility_timeout);
    qc.max_body_bytes = static_cast<std::uint32_t>(s.max_message_bytes);
    qc.max_receive_batch = 10;
    qc.full_sync = cfg.full_sync;
    if (!s.dead_letter_queue.empty()) {
      const auto dlq = queues.find(s.dead_letter_queue);
      if (dlq == queues.end()) {
        throw invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: Dead-letter target does not exist: " +
            s.dead_letter_queue + ".");
      }
      if (dlq->second.settings.fifo != s.fifo) {
        throw invalid_parameter(
            "Value for parameter RedrivePolicy is invalid. Reason: a FIFO queue's dead-letter "
            "queue must be FIFO too, a standard queue's standard.");
      }
      qc.redrive.dead_letter = dlq->second.actor;
      qc.redrive.max_receives = static_cast<std::uint32_t>(s.max_receive_count);
    }
    expected<ref<durable::queue_protocol>> actor = durable::spawn_queue(sys, qc);
    if (!actor) throw internal_error("cannot open the queue " + name + ": " + actor.error().text());
    return queue_entry{*actor, std::move(s)};
  }

  void save_settings(const std::string& name, const queue_settings& s) const {
    json::object attributes;
    for (const auto& [k, v] : s.given) attributes[k] = v;
    const json::object doc{
        {"attributes", std::move(attributes)}, {"created", s.created_s}, {"generation", s.generation}};
    const fs::path file = settings_file_of(name);
    const fs::path temporary = file.string() + ".tmp";
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << json::serialize(doc);
      if (!out.flush()) throw internal_error("cannot write " + temporary.string());
    }
    std::error_code ec;
    fs::rename(temporary, file, ec);
    if (ec) throw internal_error("cannot write " + file.string() + ": " + ec.message());
  }

  void remove_files(const std::string& name, std::uint64_t generation) const {
    std::error_code ec;
    const std::string db = database_of(name, generation).string();
    for (const std::string suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(db + suffix, ec);
  }

  // At start: every <name>.json in data_dir, dead-letter queues before the
  // queues that name them; then the files of generations nobody names.
  expected<void> load_queues() {
    std::error_code ec;
    fs::create_directories(cfg.data_dir, ec);
    if (ec) return error(errc::storage_failed, "sqs endpoint: cannot create " + cfg.data_dir + ": " + ec.message());
    std::map<std::string, queue_settings> found;
    for (const fs::directory_entry& e : fs::directory_iterator(cfg.data_dir, ec)) {
      const fs::path& p = e.path();
      if (p.extension() != ".json") continue;
      const std::string name = p.stem().string();
      if (!valid_queue_name(name)) continue;
      std::ifstream in(p);
      std::stringstream text;
      text << in.rdbuf();
      boost::system::error_code jec;
      const json::value doc = json::parse(text.str(), jec);
      if (jec || !doc.is_object())
        return error(errc::malformed_message, "sqs endpoint: " + p.string() + " is not JSON");
      try {
        const json::object& o = doc.get_object();
        std::map<std::string, std::string> attributes;
        for (const auto& kv : o.at("attributes").as_object()) attributes.emplace(kv.key(), kv.value().as_string());
        queue_settings s = settings_of(name, attributes, cfg);
        s.created_s = o.at("created").to_number<std::int64_t>();
        s.generation = o.at("generation").to_number<std::uint64_t>();
        next_generation = std::max(next_generation, s.generation + 1);
        found.emplace(name, std::move(s));
      } catch (const failure& f) {
        return error(errc::malformed_message, "sqs endpoint: " + p.string() + ": " + f.message);
      } catch (const std::exception& x) {
        return error(errc::malformed_message, "sqs endpoint: " + p.string() + ": " + x.what());
      }
    }
    if (ec) return error(errc::storage_failed, "sqs endpoint: cannot read " + cfg.data_dir + ": " + ec.message());
    std::set<std::string> opening;
    std::function<expected<void>(const std::string&)> open = [&](const std::string& name) -> expected<void> {
      if (queues.contains(name)) return {};
      const auto it = found.find(name);
      if (it == found.end()) return {};  // a dead-letter queue deleted since: the source opens without redrive
      if (!opening.insert(name).second)
        return error(errc::malformed_message, "sqs endpoint: a redrive cycle through " + name);
      if (!it->second.dead_letter_queue.empty()) {
        if (auto r = open(it->second.dead_letter_queue); !r) return r;
      }
      queue_settings s = it->second;
      if (!queues.contains(s.dead_letter_queue)) s.dead_letter_queue.clear();
      try {
        queues.emplace(name, open_queue(name, std::move(s)));
      } catch (const failure& f) {
        return error(errc::invalid_request, "sqs endpoint: " + f.message);
      }
      return {};
    };
    std::lock_guard lock(mutex);
    for (const auto& entry : found) {
      if (auto r = open(entry.first); !r) return r;
    }
    // Leftovers: databases of a generation that no .json names (a queue deleted, a create cut short).
    for (const fs::directory_entry& e : fs::directory_iterator(cfg.data_dir, ec)) {
      const std::string file = e.path().filename().string();
      const std::size_t sqlite = file.find(".sqlite");
      if (sqlite == std::string::npos) continue;
      const std::string stem = file.substr(0, sqlite);
      const std::size_t dot = stem.rfind('.');
      if (dot == std::string::npos) continue;
      const auto q = found.find(stem.substr(0, dot));
      if (q == found.end() || std::to_string(q->second.generation) != stem.substr(dot + 1)) fs::remove(e.path(), ec);
    }
    return {};
  }

  std::optional<queue_entry> find(std::string_view name) const {
    std::lock_guard lock(mutex);
    const auto it = queues.find(name);
    if (it == queues.end()) return std::nullopt;
    return it->second;
  }

  // --- the executor ---------------------------------------------------------

  void run(request r, const done_fn& done) {
    try {
      execute(std::move(r), done);
    } catch (failure& f) {
      done(std::move(f));
    } catch (const std::exception& e) {
      done(internal_error(std::string("the endpoint failed: ") + e.what()));
    }
  }

  void execute(request r, const done_fn& done) {
    response out;
    out.op = r.op;
    switch (r.op) {
      case operation::create_queue:
        out.queue_url = create_queue(r.queue_name, r.attributes);
        return done(std::move(out));
      case operation::get_queue_url:
        if (!find(r.queue_name)) throw non_existent_queue(r.queue_name);
        out.queue_url = url_of(r.queue_name);
        return done(std::move(out));
      case operation::list_queues:
        list_queues(r, out);
        return done(std::move(out));
      default:
        break;
    }
    const std::string name = name_of_url(r.queue_url);
    std::optional<queue_entry> q = name.empty() ? std::nullopt : find(name);
    if (!q) throw non_existent_queue(r.queue_url);
    switch (r.op) {
      case operation::delete_queue:
        delete_queue(name);
        return done(std::move(out));
      case operation::purge_queue:
        q->actor.ask(durable::purge_messages{}, ask_timeout,
                     [name, out, done](expected<durable::queue_status> got) mutable {
                       if (!got) return done(failure_of(got.error(), name));
                       if (!got->ok()) return done(failure_of(*got, name));
                       done(std::move(out));
                     });
        return;
      case operation::get_queue_attributes:
        return get_queue_attributes(name, *q, std::move(r), done);
      case operation::send_message:
      case operation::send_message_batch:
        return send(name, *q, std::move(r), done);
      case operation::receive_message:
        return receive(name, *q, std::move(r), done);
      case operation::delete_message:
      case operation::delete_message_batch:
        return remove(name, *q, r, done);
      case operation::change_message_visibility:
      case operation::change_message_visibility_batch:
        return change(name, *q, std::move(r), done);
      default:
        throw internal_error("unhandled operation");
    }
  }

  std::string create_queue(const std::string& name, const std::map<std::string, std::string>& attributes) {
    queue_settings s = settings_of(name, attributes, cfg);
    std::lock_guard lock(mutex);
    if (const auto it = queues.find(name); it != queues.end()) {
      for (const auto& [k, v] : attributes) {
        const auto old = it->second.settings.given.find(k);
        if (old == it->second.settings.given.end() || old->second != v) {
          throw sqs_failure("QueueAlreadyExists", "QueueNameExists",
                            "A queue already exists with the same name and a different value for attribute " + k + ".");
        }
      }
      return url_of(name);
    }
    if (queues.size() >= cfg.max_queues) {
      throw sqs_failure("OverLimit", "OverLimit",
                        "This endpoint holds its maximum of " + std::to_string(cfg.max_queues) + " queues.", 403);
    }
    s.created_s = now_ms() / 1000;
    s.generation = next_generation++;
    queue_entry entry = open_queue(name, s);
    try {
      save_settings(name, entry.settings);
    } catch (...) {
      sys.send_exit(entry.actor, exit_reason::shutdown());
      remove_files(name, s.generation);
      throw;
    }
    queues.emplace(name, std::move(entry));
    return url_of(name);
  }

  void list_queues(const request& r, response& out) const {
    std::lock_guard lock(mutex);
    const std::size_t max = r.max_results ? static_cast<std::size_t>(*r.max_results) : 1000;
    for (auto it = r.next_token.empty() ? queues.begin() : queues.upper_bound(r.next_token); it != queues.end(); ++it) {
      if (!it->first.starts_with(r.name_prefix)) continue;
      if (out.queue_urls.size() == max) {
        if (r.max_results) out.next_token = out.queue_urls.empty() ? std::string{} : name_of_url(out.queue_urls.back());
        break;
      }
      out.queue_urls.push_back(url_of(it->first));
    }
  }

  void delete_queue(const std::string& name) {
    std::lock_guard lock(mutex);
    const auto it = queues.find(name);
    if (it == queues.end()) throw non_existent_queue(name);
    const queue_entry entry = it->second;
    queues.erase(it);
    std::error_code ec;
    fs::remove(settings_file_of(name), ec);
    // The actor closes its file when it stops; its files have a generation of
    // their own, so removing them now disturbs no later queue of this name.
    sys.send_exit(entry.actor, exit_reason::shutdown());
    remove_files(name, entry.settings.generation);
  }

  void get_queue_attributes(const std::string& name, const queue_entry& q, request r, const done_fn& done) {
    q.actor.ask(
        durable::get_queue_stats{}, ask_timeout,
        [self = shared_from_this(), name, q, names = std::move(r.attribute_names),
         done](expected<durable::queue_stats> stats) {
          if (!stats) return done(failure_of(stats.error(), name));
          response out;
          out.op = operation::get_queue_attributes;
          const queue_settings& s = q.settings;
          const std::vector<std::pair<std::string, std::string>> all{
              {"ApproximateNumberOfMessages", std::to_string(stats->visible)},
              {"ApproximateNumberOfMessagesNotVisible",
               std::to_string(stats->messages - std::min(stats->messages, stats->visible))},
              {"ApproximateNumberOfMessagesDelayed", "0"},
              {"CreatedTimestamp", std::to_string(s.created_s)},
              {"LastModifiedTimestamp", std::to_string(s.created_s)},
              {"QueueArn", "arn:aws:sqs:" + self->cfg.region + ":" + self->cfg.account + ":" + name},
              {"VisibilityTimeout", std::to_string(s.visibility_timeout)},
              {"DelaySeconds", std::to_string(s.delay_seconds)},
              {"MaximumMessageSize", std::to_string(s.max_message_bytes)},
              {"MessageRetentionPeriod", std::to_string(s.retention_seconds)},
              {"ReceiveMessageWaitTimeSeconds", std::to_string(s.wait_seconds)},
              {"SqsManagedSseEnabled", "false"},
          };
          for (const auto& [k, v] : all) {
            if (attribute_wanted(k, names)) out.attributes.emplace_back(k, v);
          }
          const auto redrive = s.given.find("RedrivePolicy");
          if (redrive != s.given.end() && !redrive->second.empty() && attribute_wanted("RedrivePolicy", names)) {
            out.attributes.emplace_back(
                "RedrivePolicy",
                json::serialize(json::object{{"deadLetterTargetArn", "arn:aws:sqs:" + self->cfg.region + ":" +
                                                                         self->cfg.account + ":" + s.dead_letter_queue},
                                             {"maxReceiveCount", s.max_receive_count}}));
          }
          if (s.fifo) {
            if (attribute_wanted("FifoQueue", names)) out.attributes.emplace_back("FifoQueue", "true");
            if (attribute_wanted("ContentBasedDeduplication", names)) {
              out.attributes.emplace_back("ContentBasedDeduplication", s.content_dedup ? "true" : "false");
            }
          }
          done(std::move(out));
        });
  }

  // Collects the answers of a batch's asks (they complete on any thread) and
  // answers once the last one is in.
  struct batch {
    std::mutex m;
    std::size_t remaining = 0;
    response out;
    std::vector<std::optional<entry_ok>> ok;
    std::vector<std::optional<entry_failed>> failed;
    std::optional<failure> whole;  // SendMessage and the single operations: the request's own error
    done_fn done;

    void complete(std::size_t i, std::optional<entry_ok> good, std::optional<entry_failed> bad) {
      std::unique_lock lock(m);
      ok[i] = std::move(good);
      failed[i] = std::move(bad);
      if (--remaining != 0) return;
      lock.unlock();
      const bool single = out.op == operation::send_message || out.op == operation::delete_message ||
                          out.op == operation::change_message_visibility;
      for (std::size_t k = 0; k < ok.size(); ++k) {
        if (ok[k]) out.ok.push_back(std::move(*ok[k]));
        if (failed[k]) {
          if (single) return done(std::move(failed[k]->why));
          out.failed.push_back(std::move(*failed[k]));
        }
      }
      done(std::move(out));
    }
  };

  static std::shared_ptr<batch> make_batch(operation op, std::size_t n, done_fn done) {
    auto b = std::make_shared<batch>();
    b->out.op = op;
    b->remaining = n;
    b->ok.resize(n);
    b->failed.resize(n);
    b->done = std::move(done);
    return b;
  }

  void send(const std::string& name, const queue_entry& q, request r, const done_fn& done) {
    const queue_settings& s = q.settings;
    auto b = make_batch(r.op, r.sends.size(), done);
    for (std::size_t i = 0; i < r.sends.size(); ++i) {
      send_entry& e = r.sends[i];
      std::size_t bytes = e.body.size();
      for (const auto& [k, a] : e.attributes) bytes += k.size() + a.data_type.size() + a.value.size();
      std::optional<failure> bad;
      if (bytes > static_cast<std::size_t>(s.max_message_bytes)) {
        bad = invalid_parameter("One or more parameters are invalid. Reason: Message must be shorter than " +
                                std::to_string(s.max_message_bytes) + " bytes.");
      } else if (s.fifo && e.group_id.empty()) {
        bad = missing_parameter("MessageGroupId");
      } else if (s.fifo && e.dedup_id.empty() && !s.content_dedup) {
        bad = invalid_parameter(
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly");
      } else if (s.fifo && e.delay_seconds && *e.delay_seconds != 0) {
        bad = invalid_parameter("Value " + std::to_string(*e.delay_seconds) +
                                " for parameter DelaySeconds is invalid. Reason: The request include parameter that is "
                                "not valid for this queue type.");
      }
      if (bad) {
        b->complete(i, std::nullopt, entry_failed{e.id, std::move(*bad)});
        continue;
      }
      durable::send_message m;
      entry_ok ok{e.id, {}, md5_hex(e.body), md5_of_attributes(e.attributes)};
      m.body = std::move(e.body);
      m.attributes = stored_attributes(e.attributes);
      m.delay = std::chrono::seconds(e.delay_seconds.value_or(s.delay_seconds));
      if (s.fifo) {
        m.group_id = std::move(e.group_id);
        m.dedup_id = e.dedup_id.empty() ? sha256_hex(m.body) : std::move(e.dedup_id);
      }
      q.actor.ask(std::move(m), ask_timeout,
                  [b, i, ok = std::move(ok), name, generation = s.generation](expected<durable::sent> got) mutable {
                    if (!got) return b->complete(i, std::nullopt, entry_failed{ok.id, failure_of(got.error(), name)});
                    if (!got->status.ok())
                      return b->complete(i, std::nullopt, entry_failed{ok.id, failure_of(got->status, name)});
                    ok.message_id = message_id_of(name, generation, got->message_id);
                    b->complete(i, std::move(ok), std::nullopt);
                  });
    }
  }

  void receive(const std::string& name, const queue_entry& q, request r, const done_fn& done) {
    durable::receive_messages m;
    m.max_messages = static_cast<std::uint32_t>(r.max_messages.value_or(1));
    if (r.visibility_timeout) m.visibility_timeout = std::chrono::seconds(*r.visibility_timeout);
    const std::int64_t wait = r.wait_seconds.value_or(q.settings.wait_seconds);
    m.wait = std::chrono::seconds(wait);
    q.actor.ask(
        m, ask_timeout + std::chrono::seconds(wait),
        [name, fifo = q.settings.fifo, generation = q.settings.generation, wanted = std::move(r.attribute_names),
         wanted_attributes = std::move(r.message_attribute_names), done](expected<durable::received> got) {
          if (!got) return done(failure_of(got.error(), name));
          if (!got->status.ok()) return done(failure_of(got->status, name));
          response out;
          out.op = operation::receive_message;
          for (durable::queue_message& dm : got->messages) {
            out_message om;
            om.message_id = message_id_of(name, generation, dm.message_id);
            om.receipt = std::move(dm.receipt);
            om.body = std::move(dm.body);
            for (auto& [k, a] : loaded_attributes(dm.attributes)) {
              if (attribute_wanted(k, wanted_attributes)) om.user_attributes.emplace(k, std::move(a));
            }
            const std::vector<std::pair<std::string, std::string>> system{
                {"SenderId", "000000000000"},
                {"SentTimestamp", std::to_string(dm.sent_at_ms)},
                {"ApproximateReceiveCount", std::to_string(dm.receive_count)},
            };
            for (const auto& [k, v] : system) {
              if (attribute_wanted(k, wanted)) om.attributes.emplace_back(k, v);
            }
            if (fifo && attribute_wanted("MessageGroupId", wanted))
              om.attributes.emplace_back("MessageGroupId", dm.group_id);
            out.messages.push_back(std::move(om));
          }
          done(std::move(out));
        });
  }

  void remove(const std::string& name, const queue_entry& q, const request& r, const done_fn& done) {
    durable::delete_messages m;
    for (const receipt_entry& e : r.receipts) m.receipts.push_back(e.receipt);
    std::vector<std::string> ids;
    for (const receipt_entry& e : r.receipts) ids.push_back(e.id);
    q.actor.ask(std::move(m), ask_timeout,
                [name, op = r.op, ids = std::move(ids), done](expected<std::vector<durable::queue_status>> got) {
                  if (!got) return done(failure_of(got.error(), name));
                  response out;
                  out.op = op;
                  for (std::size_t i = 0; i < ids.size(); ++i) {
                    const durable::queue_status s =
                        i < got->size() ? (*got)[i] : durable::queue_status{errc::invalid_receipt, "no answer"};
                    if (s.ok()) {
                      out.ok.push_back(entry_ok{ids[i], {}, {}, {}});
                    } else {
                      failure f = failure_of(s, name);
                      if (op == operation::delete_message) return done(std::move(f));
                      out.failed.push_back(entry_failed{ids[i], std::move(f)});
                    }
                  }
                  done(std::move(out));
                });
  }

  void change(const std::string& name, const queue_entry& q, request r, const done_fn& done) {
    auto b = make_batch(r.op, r.receipts.size(), done);
    for (std::size_t i = 0; i < r.receipts.size(); ++i) {
      const receipt_entry& e = r.receipts[i];
      q.actor.ask(durable::change_visibility{e.receipt, std::chrono::seconds(e.visibility_timeout)}, ask_timeout,
                  [b, i, id = e.id, name](expected<durable::queue_status> got) {
                    if (!got) return b->complete(i, std::nullopt, entry_failed{id, failure_of(got.error(), name)});
                    if (got->ok()) return b->complete(i, entry_ok{id, {}, {}, {}}, std::nullopt);
                    failure f = failure_of(*got, name);
                    if (got->code == errc::invalid_receipt && !got->text.starts_with("malformed")) {
                      f = sqs_failure("AWS.SimpleQueueService.MessageNotInflight", "MessageNotInflight",
                                      "The message referred to is not in flight: " + got->text);
                    }
                    b->complete(i, std::nullopt, entry_failed{id, std::move(f)});
                  });
    }
  }

  // --- HTTP -------------------------------------------------------------------

  void handle(const gateway::http_request& http, const gateway::reply_sink& reply) {
    const std::string_view target = http.header("X-Amz-Target");
    const bool json_wire = !target.empty() || http.content_type.find("amz-json") != std::string::npos;
    const wire format = json_wire ? wire::json : wire::query;
    const std::uint64_t n = requests.fetch_add(1, std::memory_order_relaxed);  // only a counter: no ordering needed
    std::array<char, 40> id_text{};
    std::snprintf(id_text.data(), id_text.size(), "00000000-0000-4000-8000-%012" PRIx64,
                  n & std::uint64_t{0xffff'ffff'ffff});
    std::string request_id = id_text.data();
    auto answer = [format, request_id, reply](std::variant<response, failure> result) {
      gateway::http_reply out;
      out.headers.emplace_back("x-amzn-RequestId", request_id);
      if (auto* f = std::get_if<failure>(&result)) {
        encoded e = error_body(format, *f, request_id);
        out.status = f->status;
        out.content_type = std::move(e.content_type);
        out.body = std::move(e.body);
        // The JSON protocol's clients that know the query protocol's codes
        // (awsQueryCompatible) read them here: "AWS.SimpleQueueService.NonExistentQueue;Sender".
        if (format == wire::json)
          out.headers.emplace_back("x-amzn-query-error", f->code + (f->sender ? ";Sender" : ";Receiver"));
        return reply(std::move(out));
      }
      encoded e = serialize(format, std::get<response>(result), request_id);
      out.content_type = std::move(e.content_type);
      out.body = std::move(e.body);
      reply(std::move(out));
    };
    limits lim;
    lim.max_message_bytes = cfg.max_message_bytes;
    std::variant<request, failure> parsed = parse(format, target, http.body, lim);
    if (auto* f = std::get_if<failure>(&parsed)) return answer(std::move(*f));
    run(std::move(std::get<request>(parsed)), std::move(answer));
  }
};

// --- endpoint ------------------------------------------------------------------

endpoint::endpoint(std::shared_ptr<state> s) : state_(std::move(s)) {}

endpoint::~endpoint() { stop(); }

expected<std::unique_ptr<endpoint>> endpoint::start(troupe::system& sys, endpoint_config cfg) {
  if (cfg.data_dir.empty()) return error(errc::invalid_request, "sqs endpoint: endpoint_config::data_dir is empty");
  if (cfg.max_message_bytes < 1024 || cfg.max_message_bytes > 256 * 1024) {
    return error(errc::invalid_request, "sqs endpoint: max_message_bytes must be 1024 to 262144");
  }
  auto s = std::make_shared<state>(sys, std::move(cfg));
  if (auto loaded = s->load_queues(); !loaded) {
    for (auto& [name, q] : s->queues) sys.send_exit(q.actor, exit_reason::shutdown());
    return loaded.error();
  }
  gateway::server_settings settings;
  settings.address = s->cfg.address;
  settings.port = s->cfg.port;
  settings.threads = std::max<std::size_t>(1, s->cfg.threads);
  settings.max_request_bytes = s->cfg.max_request_bytes;
  settings.max_connections = s->cfg.max_connections;
  settings.idle_timeout = std::chrono::seconds(60);  // SDKs keep connections for a while between long polls
  s->server = std::make_unique<gateway::server>(settings);
  // The handler holds the state weakly: it must not keep it alive past stop().
  std::weak_ptr<state> weak = s;
  s->server->route_others([weak](const gateway::http_request& request, const gateway::reply_sink& reply) {
    if (auto self = weak.lock()) {
      self->handle(request, reply);
    } else {
      reply(gateway::http_reply{503, "text/plain", "the endpoint is stopping\n", false});
    }
  });
  try {
    s->server->start();
  } catch (const std::exception& e) {
    for (auto& [name, q] : s->queues) sys.send_exit(q.actor, exit_reason::shutdown());
    return error(errc::invalid_request, std::string("sqs endpoint: ") + e.what());
  }
  s->bound_port.store(s->server->port(), std::memory_order_relaxed);
  return std::unique_ptr<endpoint>(new endpoint(std::move(s)));
}

void endpoint::stop() {
  if (!state_ || !state_->server) return;
  state_->server->stop();
  std::lock_guard lock(state_->mutex);
  for (auto& [name, q] : state_->queues) state_->sys.send_exit(q.actor, exit_reason::shutdown());
  state_->queues.clear();
}

std::uint16_t endpoint::port() const { return state_->bound_port.load(std::memory_order_relaxed); }
std::string endpoint::url() const { return state_->base_url(); }
std::string endpoint::queue_url(std::string_view name) const { return state_->url_of(name); }

expected<std::string> endpoint::create_queue(std::string_view name,
                                             const std::map<std::string, std::string>& attributes) {
  const std::string n(name);
  if (!valid_queue_name(n)) {
    return error(errc::invalid_request, "sqs endpoint: not a queue name (1-80 of A-Z a-z 0-9 - _): " + n);
  }
  try {
    return state_->create_queue(n, attributes);
  } catch (const failure& f) {
    return error(errc::invalid_request, "sqs endpoint: " + f.code + ": " + f.message);
  }
}

expected<ref<durable::queue_protocol>> endpoint::queue(std::string_view name) {
  std::optional<queue_entry> q = state_->find(name);
  if (!q) return error(errc::no_such_actor, "sqs endpoint: no queue named " + std::string(name));
  return q->actor;
}

}  // namespace troupe::bridge::sqs
