// Shared by the runner processes: event-loop delay sampling and the JSON result line.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/**
 * Runs `fn` while sampling the event loop; prints {wallMs, loopP99Ms, loopMaxMs, startRssMiB,
 * progressCalls, extra}. startRssMiB: the process with the library loaded, before the download,
 * so the table shows what the download itself adds.
 */
export async function measure(fn) {
  const startRssMiB = process.memoryUsage().rss / 2 ** 20;
  const h = monitorEventLoopDelay({ resolution: 2 });
  let progressCalls = 0;
  const onProgress = () => {
    progressCalls++;
  };
  h.enable();
  const t0 = process.hrtime.bigint();
  const extra = await fn(onProgress);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
  h.disable();
  process.stdout.write(`${JSON.stringify({
    wallMs,
    loopP99Ms: h.percentile(99) / 1e6,
    loopMaxMs: h.max / 1e6,
    startRssMiB,
    progressCalls,
    extra,
  })}\n`);
}
