import { BrowserRouter, Route, Routes } from "react-router-dom";
import { SessionProvider } from "./auth/session";
import { Layout } from "./layout/Layout";
import { useT } from "./i18n";
import { ProjectsScreen } from "./screens/projects/ProjectsScreen";
import { WorklistScreen } from "./screens/worklist/WorklistScreen";
import { ReaderScreen } from "./screens/reader/ReaderScreen";
import { DashboardScreen } from "./screens/dashboard/DashboardScreen";
import { JobsScreen } from "./screens/jobs/JobsScreen";
import { PanelScreen, PanelWorklistScreen } from "./screens/panel/PanelScreen";
import { TokensScreen } from "./screens/account/TokensScreen";
import { AuditScreen } from "./screens/audit/AuditScreen";
import { ExportsScreen } from "./screens/exports/ExportsScreen";
import { SchemaEditorScreen } from "./screens/schema/SchemaEditorScreen";
import { ModelsScreen } from "./screens/models/ModelsScreen";
import { MembersScreen } from "./screens/members/MembersScreen";
import { DataScreen } from "./screens/data/DataScreen";
import { CasesScreen } from "./screens/cases/CasesScreen";
import { CaseScreen } from "./screens/cases/CaseScreen";
import { ReviewPolicyScreen } from "./screens/settings/ReviewPolicyScreen";
import { ViewerSettingsScreen } from "./screens/viewerSettings/ViewerSettingsScreen";

/** Client routes. Django returns index.html for each of these paths (config/views.py APP_ROUTES). */
export const ROUTES = {
  projects: "/",
  worklist: "/projects/:slug",
  dashboard: "/projects/:slug/dashboard",
  reader: "/cases/:caseId/read",
  panel: "/cases/:caseId/panel",
  panelWorklist: "/projects/:slug/panel",
  jobs: "/jobs",
  tokens: "/account/tokens",
  audit: "/projects/:slug/audit",
  exports: "/projects/:slug/exports",
  schema: "/projects/:slug/schema",
  models: "/projects/:slug/models",
  members: "/projects/:slug/members",
  data: "/projects/:slug/data",
  cases: "/projects/:slug/cases",
  case: "/cases/:caseId",
  reviewPolicy: "/projects/:slug/settings/review",
  viewerSettings: "/projects/:slug/settings/viewer",
} as const;

function NotFound() {
  const t = useT();
  return <h1>{t("common.notFound")}</h1>;
}

export function App() {
  return (
    <BrowserRouter>
      <SessionProvider>
        <Routes>
          <Route element={<Layout />}>
            <Route path={ROUTES.projects} element={<ProjectsScreen />} />
            <Route path={ROUTES.worklist} element={<WorklistScreen />} />
            <Route path={ROUTES.dashboard} element={<DashboardScreen />} />
            <Route path={ROUTES.reader} element={<ReaderScreen />} />
            <Route path={ROUTES.panel} element={<PanelScreen />} />
            <Route path={ROUTES.panelWorklist} element={<PanelWorklistScreen />} />
            <Route path={ROUTES.jobs} element={<JobsScreen />} />
            <Route path={ROUTES.tokens} element={<TokensScreen />} />
            <Route path={ROUTES.audit} element={<AuditScreen />} />
            <Route path={ROUTES.exports} element={<ExportsScreen />} />
            <Route path={ROUTES.schema} element={<SchemaEditorScreen />} />
            <Route path={ROUTES.models} element={<ModelsScreen />} />
            <Route path={ROUTES.members} element={<MembersScreen />} />
            <Route path={ROUTES.data} element={<DataScreen />} />
            <Route path={ROUTES.cases} element={<CasesScreen />} />
            <Route path={ROUTES.case} element={<CaseScreen />} />
            <Route path={ROUTES.reviewPolicy} element={<ReviewPolicyScreen />} />
            <Route path={ROUTES.viewerSettings} element={<ViewerSettingsScreen />} />
            <Route path="*" element={<NotFound />} />
          </Route>
        </Routes>
      </SessionProvider>
    </BrowserRouter>
  );
}
