// Shared by the runner processes: event-loop delay sampling and the JSON result line.
import { monitorEventLoopDelay } from 'node:perf_hooks';

/** Runs `fn` while sampling the event loop; prints {wallMs, loopP99Ms, loopMaxMs, progressCalls, extra}. */
export async function measure(fn) {
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
    progressCalls,
    extra,
  })}\n`);
}
