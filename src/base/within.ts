/**
 * Waits for `p`, or `ms` at most, and resolves undefined when the bound comes first. The bound's timer
 * is cleared as soon as `p` settles, so a bounded wait never keeps a process alive after its work is
 * done (a bare `Promise.race([p, sleep(ms)])` leaves the sleep's timer running: a node asked to stop
 * waited out 15 s of it).
 */
export async function within<T>(p: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!p) return undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
