/**
 * The read-only reader (issue 16 item 6): any one reading of a case (first, second, the AI proposal, an expert's
 * correction, the consensus or adjudicated label), route /cases/:caseId/read?reading=<annotation id>&project=<slug>,
 * opened from the case page. It loads that reading's latest revision and shows it in the ordinary reader with
 * every editing control disabled: nothing is saved, autosaved or started (it never calls the endpoints that create a
 * draft or a correction), and a banner says whose reading it is and its status.
 *
 * Whether the user may see the reading is the server's answer (GET annotations/<id>/ is 404 for a reading they may
 * not see: another reader's during blind double reading, a case outside their projects); this screen shows it.
 */
import { useEffect, useState } from "react";
import { api, listOf } from "../../api/client";
import type { Annotation, Case, Revision, Schema } from "../../api/types";
import { useT, type MessageKey } from "../../i18n";
import { ErrorMessage, Loading } from "../../layout/Status";
import { projectRoot, studySeries } from "../../viewer/dicomweb";
import { roleName } from "../cases/names";
import { Reader, type Context as ReaderContext } from "./ReaderScreen";

interface Loaded {
  context: ReaderContext;
  annotation: Annotation;
  revision: Revision;
}

async function loadReading(caseId: string, slug: string, readingId: string, t: ReturnType<typeof useT>): Promise<Loaded> {
  const [caseData, annotation, schemas] = await Promise.all([
    api.get<Case>(`/cases/${caseId}/`),
    api.get<Annotation>(`/annotations/${readingId}/`),
    api.get<Schema[] | { results: Schema[] }>(`/projects/${slug}/schemas/`),
  ]);
  if (String(annotation.case) !== String(caseData.id)) throw new Error(t("view.notThisCase", { reading: readingId, case: caseId }));
  if (!annotation.current_revision) throw new Error(t("view.noRevision"));
  const [revision, series] = await Promise.all([
    api.get<Revision>(`/annotations/${annotation.id}/revisions/${annotation.current_revision}/`),
    studySeries(projectRoot(slug), caseData.study_instance_uid),
  ]);
  // The reading is shown with the schema version it was saved under when the project still has it.
  const versions = listOf(schemas);
  const schema = versions.find((s) => s.version === revision.schema_version) ?? versions[0];
  if (!schema) throw new Error(`Project ${slug} has no label schema`);
  const context: ReaderContext = {
    caseData,
    schema,
    mine: annotation,
    myRevision: revision,
    ai: null,
    firstReading: null,
    mode: "blind_double",
    series,
    correction: null,
    sources: [],
  };
  return { context, annotation, revision };
}

export function ReadOnlyReading({ caseId, slug, readingId }: { caseId: string; slug: string; readingId: string }) {
  const t = useT();
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    setLoaded(null);
    setError(null);
    loadReading(caseId, slug, readingId, t).then(
      (l) => !cancelled && setLoaded(l),
      (e: unknown) => !cancelled && setError(e instanceof Error ? e : new Error(String(e))),
    );
    return () => {
      cancelled = true;
    };
    // Not on t: a change of language changes no reading.
  }, [caseId, slug, readingId, attempt]);

  if (error) return <ErrorMessage error={error} onRetry={() => setAttempt((n) => n + 1)} />;
  if (!loaded) return <Loading />;
  const { annotation, revision } = loaded;
  const reading = roleName(t, annotation.role);
  const status = annotation.status ? t(`cases.reading.${annotation.status}` as MessageKey) : "";
  const words = { reading, reader: annotation.reader ?? "", status, revision: revision.number };
  const banner = (
    <p role="status" className="notice" data-testid="read-only-banner" data-reading={annotation.id} data-status={annotation.status}>
      {annotation.reader ? t("view.banner", words) : t("view.bannerNoReader", words)}
    </p>
  );
  return (
    <Reader
      key={`${caseId}-${readingId}-${attempt}`}
      context={loaded.context}
      role="first_reader"
      slug={slug}
      onReload={() => setAttempt((n) => n + 1)}
      title={t("reader.title", { id: caseId })}
      view={{ banner, badge: `${t("view.badge")} · ${reading}`, backTo: `/cases/${caseId}?project=${encodeURIComponent(slug)}`, backText: t("view.backToCase") }}
    />
  );
}
