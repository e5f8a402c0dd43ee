// Sustained write load for the continuous-backup benchmark, and the lag it sees:
//   node bench/continuous-load.mjs <etcd endpoint> <prefix> <puts per second> <seconds> <metrics url> <job> [keys]
// Single puts (as Portworx writes: one key at a time), 32 in flight, paced to the rate, over `keys`
// keys (overwrites) with every 10th a delete. Every 200 ms it samples etcd's newest revision and kvdr's
// kvdr_continuous_durable_revision; the lag of a sample is how long until the durable revision
// reached it. Prints one JSON line: achieved rate, lag p50/p99/max, final revision.
import { Etcd3 } from 'etcd3';

const [endpoint, prefix, rateText, secondsText, metricsUrl, job, keysText] = process.argv.slice(2);
const rate = Number(rateText);
const seconds = Number(secondsText);
const keys = Number(keysText ?? 5000);
const etcd = new Etcd3({ hosts: [endpoint] });
let revision = 0;
let done = 0;
const started = Date.now();
const until = started + seconds * 1000;
const samples = [];
const durable = [];

async function durableRevision() {
  const text = await (await fetch(metricsUrl)).text();
  const match = new RegExp(`^kvdr_continuous_durable_revision\\{job="${job}"\\} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

const sampler = setInterval(() => {
  const t = Date.now();
  samples.push({ t, revision });
  durableRevision().then((d) => durable.push({ t: Date.now(), d }), () => undefined);
}, 200);

async function writer(worker, workers) {
  for (let i = worker; Date.now() < until; i += workers) {
    // Pace: operation i is due at started + i / rate.
    const due = started + (i / rate) * 1000;
    if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    const key = `${prefix}${String(i % keys).padStart(9, '0')}`;
    const res = i % 10 === 9 ? await etcd.delete().key(key).exec() : await etcd.put(key).value(`{"n":${i},"pad":"${'x'.repeat(150)}"}`).exec();
    revision = Math.max(revision, Number(res.header.revision));
    done++;
  }
}
await Promise.all(Array.from({ length: 32 }, (_, w) => writer(w, 32)));
const elapsed = (Date.now() - started) / 1000;
const final = revision;
// Everything written must become durable; keep sampling kvdr until it is.
const deadline = Date.now() + 120_000;
while ((durable.at(-1)?.d ?? 0) < final && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
clearInterval(sampler);
const lags = samples
  .filter((s) => s.revision > 0)
  .map((s) => {
    const reached = durable.find((d) => d.t >= s.t && d.d >= s.revision);
    return reached ? (reached.t - s.t) / 1000 : Number.POSITIVE_INFINITY;
  })
  .sort((a, b) => a - b);
const pct = (p) => lags[Math.min(lags.length - 1, Math.floor((p / 100) * lags.length))];
console.log(JSON.stringify({ puts: done, seconds: elapsed, rate: done / elapsed, finalRevision: final, samples: lags.length, p50: pct(50), p99: pct(99), max: lags.at(-1) }));
etcd.close();
