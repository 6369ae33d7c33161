// Watching what leaves the box: a diagnostics_channel subscriber, egress.stats() and a Prometheus
// scrape after two requests on loopback (the test kit's recording proxy stands for the real one).
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { Registry } from 'prom-client';
import { createEgress, EGRESS_CHANNELS, type RequestFinishEvent } from 'matrix-egress';
import { registerEgressMetrics } from 'matrix-egress/prometheus';
import { createRecordingProxy, createTestOrigin } from 'matrix-egress/testing';

const proxy = await createRecordingProxy();
const gateway = await createTestOrigin({ tls: true });
const egress = createEgress({
  env: { https_proxy: proxy.url, no_proxy: '' },
  ca: gateway.ca,
  ipAllowlist: ['127.0.0.1/32'], // the SSRF guard blocks loopback, where the test origin lives
});

// 1. A subscriber: one line per finished request (type, route, outcome, status, duration).
const onFinish = (message: unknown): void => {
  const event = message as RequestFinishEvent;
  console.log(`${event.type} via ${String(event.route)}: ${event.outcome} in ${event.durationMs.toFixed(1)} ms`);
};
diagnosticsChannel.subscribe(EGRESS_CHANNELS.requestFinish, onFinish);

// 2. The Prometheus collectors: the two lines a homeserver adds.
const registry = new Registry();
registerEgressMetrics(egress, registry);

try {
  for (const type of ['push', 'push']) {
    const response = await egress.fetch(type, `${gateway.url}/_matrix/push/v1/notify`, { method: 'POST', body: '{}' });
    await response.arrayBuffer();
  }
  // 3. The counters, as a plain object.
  const { types, tunnels } = egress.stats();
  assert.equal(types.push?.proxy.requests, 2);
  assert.equal(tunnels.opened, 1); // keep-alive: both requests used one CONNECT tunnel

  // 4. The scrape.
  const scrape = await registry.metrics();
  assert.match(scrape, /^matrix_egress_requests_total\{type="push",route="proxy",outcome="2xx"\} 2$/m);
  console.log(scrape.split('\n').filter((line) => line.startsWith('matrix_egress_requests_total')).join('\n'));
} finally {
  diagnosticsChannel.unsubscribe(EGRESS_CHANNELS.requestFinish, onFinish);
  await egress.close();
  await Promise.all([proxy.close(), gateway.close()]);
}
