// The `graphql-ws` client (what Apollo Client, urql and Relay use for
// subscriptions) against a running caregate:
// `node live.mjs <http url> <ws url> <token> <thread id>`.
// Subscribes to messageAdded on the thread, sends a message over HTTP once
// the subscription is acknowledged, and prints one JSON line: the payload
// received (or the error), for the Rust test that runs it to judge.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [httpUrl, wsUrl, token, threadId] = process.argv.slice(2);
if (!threadId) {
  console.error('usage: node live.mjs <http url> <ws url> <token> <thread id>');
  process.exit(2);
}
const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0,
  lazy: false,
  on: {
    connected: async () => {
      // Subscribed before anything is sent: give the subscribe a moment.
      await new Promise((r) => setTimeout(r, 300));
      await fetch(httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          query: 'mutation($t: UUID!) { sendMessage(threadId: $t, body: "from graphql-ws") { id } }',
          variables: { t: threadId },
        }),
      });
    },
  },
});
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: 'timeout' }));
  process.exit(1);
}, 10000);
const result = await new Promise((resolve) => {
  const dispose = client.subscribe(
    { query: 'subscription($t: UUID!) { messageAdded(threadId: $t) { body sender { displayName } } }', variables: { t: threadId } },
    {
      next: (value) => { dispose(); resolve({ next: value }); },
      error: (error) => resolve({ error: String(error?.reason ?? error?.message ?? error) }),
      complete: () => {},
    },
  );
});
clearTimeout(timer);
console.log(JSON.stringify(result));
await client.dispose();
process.exit(0);
