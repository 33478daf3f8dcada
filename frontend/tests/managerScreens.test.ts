import { describe, expect, it } from "vitest";
import { auditQuery } from "../src/screens/audit/AuditScreen";
import { formatBytes } from "../src/lib/format";
import { DEFAULT_FORM, exportRequest } from "../src/screens/exports/ExportsScreen";
import { translate } from "../src/i18n";

describe("manager screens", () => {
  it("sends only the audit filters that are set", () => {
    expect(auditQuery({ actor: "annotator", kind: "", case: "12", since: "2026-12-01", until: "" }, { limit: 100 })).toBe(
      "?actor=annotator&case=12&since=2026-12-01&limit=100",
    );
    expect(auditQuery({ actor: "", kind: "", case: "", since: "", until: "" })).toBe("");
  });

  it("writes sizes in binary units", () => {
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MB");
  });

  it("has the audit kinds and token states in Chinese", () => {
    expect(translate("zh-hans", "audit.kind.panel_vote")).toBe("专家组投票");
    expect(translate("zh-hans", "tokens.state.revoked")).toBe("已吊销");
    expect(translate("zh-hans", "audit.count", { count: 3 })).toBe("共 3 条");
  });
});

describe("export request", () => {
  it("sends the filters that are set, upper-case modalities and the split as numbers", () => {
    const body = exportRequest({
      ...DEFAULT_FORM,
      formats: ["monai", "csv"],
      minQaLevel: "adjudicated",
      modalities: "ct, mr",
      dateFrom: "2026-01-01",
      train: "0.6",
      validation: "0.2",
      test: "0.2",
      seed: "7",
      stratifyBy: "malignancy",
    });
    expect(body).toEqual({
      formats: ["monai", "csv"],
      filters: { min_qa_level: "adjudicated", modalities: ["CT", "MR"], study_date_from: "2026-01-01" },
      split: { train: 0.6, validation: 0.2, test: 0.2, seed: 7, stratify_by: "malignancy" },
      deidentify: true,
    });
  });

  it("leaves the optional filters out by default", () => {
    expect(exportRequest(DEFAULT_FORM).filters).toEqual({ min_qa_level: "agreed" });
  });
});
