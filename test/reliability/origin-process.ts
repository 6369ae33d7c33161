/**
 * Child-process entry of `startOriginProcess()` (harness.ts): an https and an http test origin on
 * loopback, announced to the parent over IPC. Not a test file.
 */
import { createTestOrigin } from '../../src/testing/test-origin.js';

const https = await createTestOrigin({ tls: true });
const http = await createTestOrigin();

process.on('message', (message) => {
  if (message === 'count') process.send?.({ requests: https.calls().length + http.calls().length });
});
// The parent went away (or closed the channel): nothing left to serve.
process.once('disconnect', () => {
  void Promise.all([https.close(), http.close()]).finally(() => process.exit(0));
});

process.send?.({
  type: 'ready',
  httpsUrl: https.url,
  httpUrl: http.url,
  httpsPort: https.port,
  httpPort: http.port,
  ca: https.ca ?? '',
});
