Feature: Health of the stack
  The gateway's health page keeps the original stack's shape: one entry per service behind the
  gateway, with how long the service took to answer a ping. It is all good news only when every
  service answers.

  Scenario: Every service of the stack is healthy
    When I ask the gateway how the stack is
    Then the answer is 200
    And the health report lists exactly these services:
      | user        |
      | slack       |
      | user-queue  |
      | slack-queue |
    And every service in the health report answered "pong" and said how long it took
