// troupe/ports/ports.hpp: everything of troupe::ports (port.hpp is where to start).
#pragma once

#include "troupe/ports/framing.hpp"
#include "troupe/ports/messages.hpp"
#include "troupe/ports/port.hpp"
#include "troupe/ports/reactor.hpp"
