// The GraphQL over HTTP server audit of the `graphql-http` package against a
// running caregate: `node audit.mjs <url>`. Prints one JSON line per audit
// ({ id, name, status: ok | warn | error, reason }) for the Rust test that
// runs it to judge.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}
const results = await auditServer({ url });
for (const r of results) {
  console.log(JSON.stringify({ id: r.id, name: r.name, status: r.status, reason: r.reason ?? null }));
}
