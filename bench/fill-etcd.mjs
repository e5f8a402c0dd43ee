// Fills etcd for the benchmarks: `node bench/fill-etcd.mjs <endpoint> <prefix> <count> <valueBytes>`.
// Values are JSON-like text (as Portworx writes) with a random part, so compression sees realistic data.
// Batched transactions of 128 puts (etcd's default --max-txn-ops), 4 in flight.
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';

const [endpoint, prefix, countText, sizeText] = process.argv.slice(2);
const count = Number(countText);
const size = Number(sizeText);
const etcd = new Etcd3({ hosts: [endpoint], grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 } });
const value = (i) => {
  const head = `{"id":"vol-${i}","labels":{"app":"db","tier":"gold"},"spec":"`;
  const fill = randomBytes(Math.max(0, Math.ceil((size - head.length - 2) / 2))).toString('hex');
  return (head + fill).slice(0, size - 2) + '"}';
};
const batch = Math.max(1, Math.min(128, Math.floor((1024 * 1024) / (size + 64))));
let next = 0;
async function worker() {
  while (next < count) {
    const start = next;
    next = Math.min(count, next + batch);
    const success = [];
    for (let i = start; i < next; i++) {
      success.push({ request_put: { key: Buffer.from(`${prefix}${String(i).padStart(9, '0')}`), value: Buffer.from(value(i)) } });
    }
    await etcd.kv.txn({ compare: [], success, failure: [] });
  }
}
await Promise.all([worker(), worker(), worker(), worker()]);
etcd.close();
