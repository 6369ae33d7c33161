// The assertions of matrix-egress/testing need no test runner. This plain script checks, on
// loopback, that push goes through the proxy and application service traffic goes direct; a failed
// expectation throws node:assert's AssertionError, which ends the script with exit code 1 and the
// message on stderr. Run it with `node` (after compiling).
import { createEgress } from 'matrix-egress';
import { createRecordingProxy, createTestOrigin, describeCall, expectDirect, expectTunnel } from 'matrix-egress/testing';

const proxy = await createRecordingProxy();
const gateway = await createTestOrigin({ tls: true }); // HTTPS, with a throwaway CA
const appservice = await createTestOrigin(); // plain HTTP, as on a private network
const egress = createEgress({
  env: { https_proxy: proxy.url, http_proxy: proxy.url, no_proxy: '' },
  ca: gateway.ca,
  ipAllowlist: ['127.0.0.1/32'], // the SSRF guard blocks loopback, where the test origins live
});

try {
  const push = await egress.fetch('push', `${gateway.url}/_matrix/push/v1/notify`, { method: 'POST', body: '{}' });
  await push.arrayBuffer();
  const transaction = await egress.fetch('appservice', `${appservice.url}/_matrix/app/v1/transactions/1`, { method: 'PUT', body: '{}' });
  await transaction.arrayBuffer();

  const tunnel = expectTunnel(proxy, `127.0.0.1:${String(gateway.port)}`);
  const direct = expectDirect(appservice, proxy, { method: 'PUT' });
  console.log(`push        through the proxy: ${describeCall(tunnel)}`);
  console.log(`appservice  direct:            ${describeCall(direct)}`);
} finally {
  await egress.close();
  await Promise.all([proxy.close(), gateway.close(), appservice.close()]);
}
