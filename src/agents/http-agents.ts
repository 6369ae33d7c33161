// TEMPORARY placeholder while the http.Agent side is being written; replaced before commit.
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { EgressConfig } from '../config/compile.js';
import type { ConnectionTypePolicy } from '../policy/connection-types.js';
import type { ConnectionPools } from '../dispatch/pools.js';
import type { TlsSettings } from '../dispatch/tls.js';

export class HttpAgents {
  constructor(_config: EgressConfig, _tls: TlsSettings, _pools: ConnectionPools) {}
  http(_policy: ConnectionTypePolicy): HttpAgent {
    return new HttpAgent();
  }
  https(_policy: ConnectionTypePolicy): HttpsAgent {
    return new HttpsAgent();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
