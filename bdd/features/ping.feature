Feature: Ping
  The gateway answers a ping, as the original stack did, so that a person or a probe can tell
  at a glance that it is up.

  Scenario: The gateway answers a ping
    When I ping the gateway
    Then the answer is 200
    And the answer says "pong"
