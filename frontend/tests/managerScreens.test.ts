import { describe, expect, it } from "vitest";
import { auditQuery } from "../src/screens/audit/AuditScreen";
import { formatBytes } from "../src/lib/format";
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
