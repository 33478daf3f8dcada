import { describe, expect, it } from "vitest";
import { changes } from "../src/screens/settings/ReviewPolicyScreen";
import { roleName } from "../src/screens/cases/names";
import { readingToOpen, type CaseAnnotation } from "../src/screens/cases/CaseScreen";
import { translate } from "../src/i18n";

describe("review policy form", () => {
  it("sends only what changed, typed for the API", () => {
    const before = { mode: "blind_double", gold_rate: "0", gold_feedback: false, panel_deadline_hours: "24", chair_username: "" };
    const after = { mode: "verification", gold_rate: "0.25", gold_feedback: true, panel_deadline_hours: "", chair_username: "expert1" };
    expect(changes(before, after)).toEqual({
      mode: "verification",
      gold_rate: 0.25,
      gold_feedback: true,
      panel_deadline_hours: null,
      chair_username: "expert1",
    });
    expect(changes(before, { ...before })).toEqual({});
    // An emptied chair is "no chair"; an emptied number is sent as typed, for the server to name the field.
    expect(changes({ chair_username: "expert1", quorum: "2" }, { chair_username: "", quorum: "" })).toEqual({
      chair_username: null,
      quorum: "",
    });
  });
});

describe("case browser names", () => {
  it("names reading and annotation roles in both languages, and unknown roles as they are", () => {
    const zh = (key: Parameters<typeof translate>[1], params?: Record<string, string | number>) => translate("zh-hans", key, params);
    expect(roleName(zh, "consensus")).toBe("一致标注");
    expect(roleName(zh, "first_reader")).toBe("初读者");
    expect(roleName(zh, "something_new")).toBe("something_new");
    expect(translate("en", "cases.count", { count: 7 })).toBe("Cases: 7");
  });
});

describe("the reading the case page opens", () => {
  const reading = (id: number, role: string, submitted_at: string | null) =>
    ({ id, role, submitted_at }) as unknown as CaseAnnotation;
  it("is the final label when the case has one, else the reading submitted last, else the latest draft", () => {
    const first = reading(1, "first_reader", "2026-12-06T10:00:00Z");
    const second = reading(2, "second_reader", "2026-12-06T11:00:00Z");
    const draft = reading(3, "panel_member", null);
    expect(readingToOpen([second, first, draft])?.id).toBe(2);
    expect(readingToOpen([first, second, draft, reading(4, "adjudicated", "2026-12-06T09:00:00Z")])?.id).toBe(4);
    expect(readingToOpen([draft])?.id).toBe(3);
    expect(readingToOpen([])).toBeNull();
  });
});
