// troupe::bridge's one source: bridge.hpp is all templates, so this compiles it
// on its own (it must include what it uses) and instantiates source_core for a
// plain payload, so a defect in the template shows when the library builds,
// not first in a user's program.
#include "troupe/bridge/bridge.hpp"

namespace troupe::bridge {

template class source_core<std::string, text_codec>;

}  // namespace troupe::bridge
