/** Runs `onSignal` on the first SIGINT or SIGTERM; returns a function that removes the handlers. */
export function onTerminationSignal(onSignal: () => void): () => void {
  const handler = (): void => onSignal();
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
