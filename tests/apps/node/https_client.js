// HTTPS client on Node's `https` (its OpenSSL is linked into the `node`
// executable, and drives the socket through its own memory BIO, not
// OpenSSL's socket BIO) for the tracer's TLS tests.
//
//   node https_client.js URL --ca FILE [--count N] [--wait]
//
// N GETs of URL one after another through a keepAlive agent with one
// socket, verified against CA; prints "STATUS <code>" per response and
// "CONNECTIONS <k>" (sockets opened) at the end. --wait: print "WAITING" and
// wait for a line on stdin first. Exits 1 on an error or more than one
// connection.
'use strict';

const fs = require('fs');
const https = require('https');

function option(args, name, fallback) {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
}

function get(url, agent, ca) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { agent, ca }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
  });
}

function waitForGo() {
  return new Promise((resolve, reject) => {
    console.log('WAITING');
    process.stdin.once('data', () => {
      process.stdin.pause();
      resolve();
    });
    process.stdin.once('end', () => reject(new Error('stdin closed while waiting')));
  });
}

async function main() {
  const args = process.argv.slice(2);
  const url = args[0];
  const ca = fs.readFileSync(option(args, '--ca'));
  const count = parseInt(option(args, '--count', '1'), 10);
  if (args.includes('--wait')) {
    await waitForGo();
  }
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  let connections = 0;
  const createConnection = agent.createConnection.bind(agent);
  agent.createConnection = (...a) => {
    connections += 1;
    return createConnection(...a);
  };
  for (let i = 0; i < count; i += 1) {
    const status = await get(url, agent, ca);
    console.log(`STATUS ${status}`);
  }
  agent.destroy();
  console.log(`CONNECTIONS ${connections}`);
  if (connections !== 1) {
    throw new Error(`${connections} connections, want 1`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
