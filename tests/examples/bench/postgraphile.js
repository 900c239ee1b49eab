// PostGraphile 4 over the benchmark's database, as the benchmark's peer.
//
// The benchmark installs PostGraphile under the target directory and runs
// this script with:
//   NODE_PATH     that install's node_modules
//   PG_URL        the bench database as caregate's runtime role (caregate_app:
//                 NOSUPERUSER, NOBYPASSRLS), the role the server connects as
//   PG_POOL       connections (the server's DB_POOL_SIZE)
//   PORT          port on 127.0.0.1
//   JWT_SECRET, JWT_ISSUER, JWT_AUDIENCE, IDLE_MINUTES: as the server's
//
// Row-level security needs the context caregate's guard sets: the policies
// read `app.tenant_id`, `app.user_id`, `app.role`, `app.facilities` and the
// portal scopes, and `app.begin_request` is what sets them, after checking
// the session (revoked, expired, idle), the user and their membership. It
// refuses a context already set in the transaction, so setting `app.*` by
// `set_config` would be a different (and unchecked) context. So `pgSettings`
// verifies caregate's token and names the settings it carries, and a
// `withPostGraphileContext` hook opens each request's transaction the way
// caregate's guard does: `BEGIN` and `app.begin_request(...)` in one round
// trip, the query, `COMMIT`.
'use strict';

const crypto = require('node:crypto');
const http = require('node:http');
const { postgraphile, makePluginHook } = require('postgraphile');
const { Pool } = require('pg');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const secret = Buffer.from(env('JWT_SECRET'), 'utf8');
const issuer = env('JWT_ISSUER');
const audience = env('JWT_AUDIENCE');
const idleMinutes = parseInt(env('IDLE_MINUTES'), 10);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Round trips to PostgreSQL and requests, for the benchmark's counts.
const stats = { requests: 0, roundTrips: 0 };

/** caregate's access token (HS256) from `Authorization: Bearer`, verified. */
function claimsOf(req) {
  const m = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(req.headers.authorization || '');
  if (!m) throw new Error('no bearer token');
  const header = JSON.parse(Buffer.from(m[1], 'base64url'));
  if (header.alg !== 'HS256') throw new Error('unexpected token algorithm');
  const mac = crypto.createHmac('sha256', secret).update(`${m[1]}.${m[2]}`).digest();
  const sig = Buffer.from(m[3], 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) {
    throw new Error('bad token signature');
  }
  const c = JSON.parse(Buffer.from(m[2], 'base64url'));
  if (c.iss !== issuer || c.aud !== audience || !(c.exp > Date.now() / 1000)) {
    throw new Error('token expired or not for this server');
  }
  for (const id of [c.sub, c.org, c.sid]) {
    if (typeof id !== 'string' || !UUID.test(id)) throw new Error('malformed token');
  }
  return c;
}

/** What the token sets: the settings `app.begin_request` sets from it. */
function pgSettings(req) {
  const c = claimsOf(req);
  const ip = (req.socket.remoteAddress || '').replace(/^::ffff:/, '');
  return {
    'app.user_id': c.sub,
    'app.tenant_id': c.org,
    'app.session_id': c.sid,
    'app.ip': ip,
    'app.user_agent': req.headers['user-agent'] || '',
  };
}

// Texts travel hex-encoded, decoded by PostgreSQL, as caregate sends them.
const text = (v) => `convert_from(decode('${Buffer.from(v, 'utf8').toString('hex')}', 'hex'), 'UTF8')`;

/** The statement caregate's guard opens a request with. */
function beginStatement(s) {
  for (const id of [s['app.user_id'], s['app.tenant_id'], s['app.session_id']]) {
    if (!UUID.test(id)) throw new Error('malformed context');
  }
  const ip = s['app.ip'] ? `(${text(s['app.ip'])})::inet` : 'NULL::inet';
  return (
    'BEGIN; SELECT role, is_super_admin, consent_required, portal_scope, facility_scope, ' +
    `mfa_required FROM app.begin_request(${text(crypto.randomUUID())}, ${ip}, ` +
    `${text(s['app.user_agent'])}, '${s['app.user_id']}'::uuid, '${s['app.tenant_id']}'::uuid, ` +
    `'${s['app.session_id']}'::uuid, ${idleMinutes}, false, true)`
  );
}

const requestContext = {
  withPostGraphileContext() {
    return async (options, callback) => {
      const settings = options.pgSettings;
      if (!settings) throw new Error('no context');
      const client = await options.pgPool.connect();
      const query = client.query;
      let trips = 0;
      client.query = function (...args) {
        trips += 1;
        return query.apply(this, args);
      };
      let done = false;
      try {
        const results = await client.query(beginStatement(settings));
        const row = results[results.length - 1].rows[0];
        if (!row || row.consent_required || row.mfa_required) {
          throw new Error('the session may not read patient data');
        }
        const result = await callback({ pgClient: client });
        // An aborted transaction answers COMMIT with ROLLBACK.
        const tag = await client.query('COMMIT');
        done = true;
        if (tag.command !== 'COMMIT') throw new Error(`COMMIT answered ${tag.command}`);
        return result;
      } finally {
        if (!done) await client.query('ROLLBACK').catch(() => {});
        client.query = query;
        stats.requests += 1;
        stats.roundTrips += trips;
        client.release();
      }
    };
  },
};

const pool = new Pool({
  connectionString: env('PG_URL'),
  max: parseInt(env('PG_POOL'), 10),
  application_name: 'postgraphile-bench',
});

// The options PostGraphile's documentation recommends for production,
// reads only (the benchmark's operation is a query).
const handler = postgraphile(pool, 'public', {
  pluginHook: makePluginHook([requestContext]),
  pgSettings,
  retryOnInitFail: false,
  dynamicJson: true,
  setofFunctionsContainNulls: false,
  ignoreRBAC: false,
  disableDefaultMutations: true,
  legacyRelations: 'omit',
  extendedErrors: ['errcode'],
  graphiql: false,
  enhanceGraphiql: false,
  disableQueryLog: true,
  watchPg: false,
});

const server = http.createServer((req, res) => {
  if (req.url === '/bench-stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  handler(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(parseInt(env('PORT'), 10), '127.0.0.1', () => {
  console.log(`postgraphile listening on 127.0.0.1:${server.address().port}`);
});
