import { useCallback, useEffect, useRef, useState } from "react";

export type Outcome<T> = { data: T; error: null } | { data: undefined; error: Error };

/**
 * Runs loads one after another's start and hands on only the outcome of the latest one started: an older,
 * slower answer (the whole list, asked for before the filter was applied) must not replace a newer one. Returns,
 * per load, whether its outcome was applied.
 */
export function latestOnly<T>(apply: (outcome: Outcome<T>) => void): (load: () => Promise<T>) => Promise<boolean> {
  let latest = 0;
  return async (load) => {
    const mine = ++latest;
    let outcome: Outcome<T>;
    try {
      outcome = { data: await load(), error: null };
    } catch (exc) {
      outcome = { data: undefined, error: exc instanceof Error ? exc : new Error(String(exc)) };
    }
    if (mine !== latest) return false;
    apply(outcome);
    return true;
  };
}

/** Load data for a screen: `const {data, error, loading, reload} = useAsync(() => api.get(...), [deps])`. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(true);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const run = useCallback(load, deps);
  const sequence = useRef(
    latestOnly<T>((outcome) => {
      if (outcome.error) setError(outcome.error);
      else {
        setData(outcome.data);
        setError(null);
      }
      setLoading(false);
    }),
  );
  const reload = useCallback(async () => {
    setLoading(true);
    await sequence.current(run);
  }, [run]);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload, setData };
}
