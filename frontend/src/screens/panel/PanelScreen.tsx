import { useParams, useSearchParams } from "react-router-dom";
import { useSession } from "../../auth/session";
import { PanelView } from "./PanelView";
import { PanelWorklistView } from "./PanelWorklistView";

/** The project's panel for the case's project: ?project=<slug>, else the user's first project as an expert. */
function useProjectSlug(): string {
  const [params] = useSearchParams();
  const { me } = useSession();
  return params.get("project") ?? me.projects.find((p) => p.roles.includes("expert"))?.slug ?? me.projects[0]?.slug ?? "";
}

/** Expert panel review of one case (route /cases/:caseId/panel?project=<slug>). */
export function PanelScreen() {
  const { caseId = "" } = useParams();
  const slug = useProjectSlug();
  return <PanelView key={`${caseId}-${slug}`} caseId={caseId} slug={slug} />;
}

/** The expert's panel worklist of one project (route /projects/:slug/panel). */
export function PanelWorklistScreen() {
  const { slug = "" } = useParams();
  return <PanelWorklistView slug={slug} />;
}
