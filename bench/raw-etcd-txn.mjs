// The ceiling for a Node client: `node bench/raw-etcd-txn.mjs <endpoint> <prefix> <count> <valueBytes> [inFlight]`
// writes count keys in transactions of 128 puts, inFlight transactions at a time, and prints keys/s.
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';

const [endpoint, prefix, countText, sizeText, inFlightText] = process.argv.slice(2);
const count = Number(countText);
const value = randomBytes(Number(sizeText) / 2).toString('hex');
const inFlight = Number(inFlightText ?? 1);
const etcd = new Etcd3({ hosts: [endpoint] });
const started = Date.now();
let next = 0;
async function worker() {
  while (next < count) {
    const start = next;
    next = Math.min(count, next + 128);
    const success = [];
    for (let i = start; i < next; i++) success.push({ request_put: { key: Buffer.from(`${prefix}${String(i).padStart(9, '0')}`), value: Buffer.from(value) } });
    await etcd.kv.txn({ compare: [], success, failure: [] });
  }
}
await Promise.all(Array.from({ length: inFlight }, worker));
const seconds = (Date.now() - started) / 1000;
console.log(`${count} keys in ${seconds.toFixed(1)} s: ${Math.round(count / seconds)} keys/s`);
etcd.close();
