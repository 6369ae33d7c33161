// A homeserver-style module: the outbound calls a homeserver makes for push notifications, URL
// previews and application services, each through the egress with its connection type. It is what
// testing-push-routing.ts tests with matrix-egress/testing (docs/guides/testing-proxy-routing.md).
import type { Egress } from 'matrix-egress';

/**
 * Send one notification to a push gateway (Matrix Push Gateway API, `POST /_matrix/push/v1/notify`)
 * and return the pushkeys the gateway rejected.
 */
export async function sendPush(egress: Egress, gatewayUrl: string, pushkey: string): Promise<string[]> {
  const response = await egress.fetch('push', new URL('/_matrix/push/v1/notify', gatewayUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      notification: {
        event_id: '$3957tyerfgewrf384',
        room_id: '!slw48wfj34rtnrf:example.org',
        devices: [{ app_id: 'org.example.app', pushkey }],
      },
    }),
  });
  if (!response.ok) throw new Error(`the push gateway answered ${String(response.status)}`);
  const answer = (await response.json()) as { rejected?: string[] };
  return answer.rejected ?? [];
}

/** Fetch a page a user posted and return its title, for a URL preview. */
export async function previewUrl(egress: Egress, url: string): Promise<{ title: string | undefined }> {
  const response = await egress.fetch('url_preview', url, { headers: { accept: 'text/html' } });
  const html = await response.text();
  return { title: /<title>([^<]*)<\/title>/i.exec(html)?.[1] };
}

/** Deliver a transaction of events to an application service (`PUT /_matrix/app/v1/transactions/{txnId}`). */
export async function sendTransaction(egress: Egress, appserviceUrl: string, txnId: string, events: readonly object[]): Promise<void> {
  const response = await egress.fetch('appservice', new URL(`/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`, appserviceUrl), {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events }),
  });
  await response.arrayBuffer();
  if (!response.ok) throw new Error(`the application service answered ${String(response.status)}`);
}
