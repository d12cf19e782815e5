// A free TCP port on 127.0.0.1 for a server a test starts in another process
// (swtpm, PostgreSQL, the verifier), which must be told its port up front.
//
// The port is picked below the kernel's default ephemeral range (32768 and
// up), so no outgoing connection of another process is given it between the
// probe and the server's bind, nor while the server is down between a kill
// and its restart. It is free when probed; a caller that races another
// process for it retries with a new one.
//
// Thread safety: may be called from any thread.
#ifndef AGENTROOT_COMMON_TESTING_PORTS_H_
#define AGENTROOT_COMMON_TESTING_PORTS_H_

#include "agentroot/common/status.h"

namespace agentroot::common::testing {

// A port in [20000, 32000) that could be bound on 127.0.0.1 just now;
// INTERNAL after 100 taken ones.
Result<int> FreeLoopbackPort();

}  // namespace agentroot::common::testing

#endif  // AGENTROOT_COMMON_TESTING_PORTS_H_
