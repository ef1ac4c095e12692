// A gRPC service and client on @grpc/grpc-js (the pure-JavaScript
// implementation), with no tracing library and no generated code: messages
// are raw bytes. The same roles and output as tests/apps/python/grpc_echo.py:
//
//   node grpc_echo.js server [--downstream HOST:PORT] [--port PORT]
//                                                       prints "LISTENING <port>"
//   node grpc_echo.js client HOST:PORT [--sequential N] [--concurrent N] [--big-kib K]
//                                                       prints "RESULT ok=<n> failed=<n>"
'use strict';

const grpc = require('@grpc/grpc-js');

const identity = (b) => b;

function method(name, requestStream, responseStream) {
  return {
    path: `/demo.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
    originalName: name,
  };
}

const SERVICE = {
  Say: method('Say', false, false),
  Count: method('Count', false, true),
  Collect: method('Collect', true, false),
  Chat: method('Chat', true, true),
};
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');

function option(args, name, fallback) {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
}

function deadline() {
  return { deadline: Date.now() + 10000 };
}

function serve(downstream, port) {
  const down = downstream ? new Client(downstream, grpc.credentials.createInsecure()) : null;
  const server = new grpc.Server();
  server.addService(SERVICE, {
    Say(call, callback) {
      const request = call.request;
      if (request.toString() === 'missing') {
        callback({ code: grpc.status.NOT_FOUND, details: 'no such greeting' });
      } else if (down) {
        down.Say(request, deadline(), callback);
      } else {
        callback(null, Buffer.concat([Buffer.from('hello '), request]));
      }
    },
    Count(call) {
      const n = parseInt(call.request.toString() || '3', 10);
      for (let i = 0; i < n; i++) call.write(Buffer.from(String(i)));
      call.end();
    },
    Collect(call, callback) {
      const parts = [];
      call.on('data', (d) => parts.push(d.toString()));
      call.on('end', () => callback(null, Buffer.from(parts.join(','))));
    },
    Chat(call) {
      call.on('data', (d) => call.write(Buffer.concat([Buffer.from('echo '), d])));
      call.on('end', () => call.end());
    },
  });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
    if (err) {
      console.error(`bind: ${err}`);
      process.exit(1);
    }
    console.log(`LISTENING ${bound}`);
  });
}

function say(client, i) {
  const body = i % 10 === 9 ? 'missing' : `n${i}`;
  return new Promise((resolve) => {
    client.Say(Buffer.from(body), deadline(), (err, reply) => {
      if (err) {
        const ok = body === 'missing' && err.code === grpc.status.NOT_FOUND;
        if (!ok) console.error(`ERROR ${err.code} ${err.details}`);
        resolve(ok);
      } else {
        resolve(reply.toString().endsWith(body));
      }
    });
  });
}

function count(client) {
  return new Promise((resolve) => {
    const got = [];
    const call = client.Count(Buffer.from('3'), deadline());
    call.on('data', (d) => got.push(d.toString()));
    call.on('error', () => resolve(false));
    call.on('end', () => resolve(got.join(',') === '0,1,2'));
  });
}

function collect(client) {
  return new Promise((resolve) => {
    const call = client.Collect(deadline(), (err, reply) =>
      resolve(!err && reply.toString() === 'a,b'));
    call.write(Buffer.from('a'));
    call.write(Buffer.from('b'));
    call.end();
  });
}

function chat(client) {
  return new Promise((resolve) => {
    const got = [];
    const call = client.Chat(deadline());
    call.on('data', (d) => got.push(d.toString()));
    call.on('error', () => resolve(false));
    call.on('end', () => resolve(got.join(',') === 'echo x,echo y'));
    call.write(Buffer.from('x'));
    call.write(Buffer.from('y'));
    call.end();
  });
}

function sayBig(client, kib) {
  const body = Buffer.concat([Buffer.from('big'), Buffer.alloc(kib * 1024, 'x')]);
  return new Promise((resolve) => {
    client.Say(body, deadline(), (err, reply) => {
      if (err) console.error(`ERROR big ${err.code} ${err.details}`);
      resolve(!err && reply.subarray(reply.length - body.length).equals(body));
    });
  });
}

async function run(target, sequential, concurrent, bigKib) {
  const client = new Client(target, grpc.credentials.createInsecure());
  const results = [];
  for (let i = 0; i < sequential; i++) results.push(await say(client, i));
  // One large message: many DATA frames in one write.
  if (bigKib > 0) results.push(await sayBig(client, bigKib));
  const batch = [];
  for (let i = 0; i < concurrent; i++) batch.push(say(client, i));
  results.push(...(await Promise.all(batch)));
  results.push(await count(client), await collect(client), await chat(client));
  const ok = results.filter((r) => r).length;
  console.log(`RESULT ok=${ok} failed=${results.length - ok}`);
  client.close();
}

const args = process.argv.slice(2);
if (args[0] === 'server') {
  serve(option(args, '--downstream', null), parseInt(option(args, '--port', '0'), 10));
} else if (args[0] === 'client' && args[1]) {
  run(args[1], parseInt(option(args, '--sequential', '20'), 10),
    parseInt(option(args, '--concurrent', '0'), 10),
    parseInt(option(args, '--big-kib', '0'), 10));
} else {
  console.error('usage: grpc_echo.js server [--downstream HOST:PORT] | client HOST:PORT [--sequential N] [--concurrent N]');
  process.exit(2);
}
